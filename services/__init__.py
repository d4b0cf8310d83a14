"""latentforge generation service: gRPC on ONNX Runtime, with a latent cache and metrics.

Nothing in this package imports torch: it runs from the ``serve`` install.
"""
