"""Generated gRPC/protobuf code for ``proto/latentforge/v1`` (regenerate: python -m tools.protogen)."""
