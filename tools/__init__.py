"""Tools around the service that a serving process does not run: the load generator, the raw
ONNX Runtime benchmark, the ``latentforge bench`` command and the proto code generator."""
