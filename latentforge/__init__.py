"""latentforge: train generative image models, export them to ONNX, serve them over gRPC.

This package holds what every part shares: the command line, the model-repository
manifest contract, and the generated gRPC API (``latentforge.v1``).
"""

__version__ = "0.1.0"
