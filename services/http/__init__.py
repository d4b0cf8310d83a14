"""The HTTP/JSON surface: the services of an ``RpcServer`` over HTTP/1.1, on a port of its own,
in the same process and over the same servicers and pipelines (see docs/http.md)."""
