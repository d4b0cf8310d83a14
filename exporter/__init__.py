"""Exporter: trained checkpoints -> checked ONNX graphs -> a model-repository version."""
