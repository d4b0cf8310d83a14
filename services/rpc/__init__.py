"""RPC plumbing every gRPC service of the project shares, used by composition.

* ``server``   - ``RpcServer``: hosts one or more ``RpcService``s on one port; TLS, tokens,
                 health, reflection, /metrics, the drain on SIGTERM.
* ``calls``    - the per-call wrapper (``@unary`` / ``@stream``): request id, timing, access
                 log, error → status, drain refusal, trailers.
* ``status``   - the one map from ``services.errors`` kinds to gRPC statuses.
* ``health``   - readiness per service and ``liveness``.
* ``security`` - TLS / mutual TLS credentials and bearer tokens (server and client side).
* ``logs``     - structured JSON logs with the request id; ``note`` adds facts to a call's line.
* ``metrics``  - per-call metrics and the cache of labelled metric children.
* ``settings`` - typed settings: flags > environment > file > defaults, flags from the fields.

A service brings a servicer that converts proto messages to typed requests for a pipeline that
knows nothing of gRPC (see ``services.generation``).
"""
