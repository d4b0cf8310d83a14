"""gRPC health probe for containers: exit 0 when the server answers SERVING, 1 otherwise.

Docker's HEALTHCHECK and the compose file run it inside the serving image, and Kubernetes runs
it as an ``exec`` probe when TLS is on (Kubernetes' native ``grpc:`` probe speaks plaintext
only). It asks the standard ``grpc.health.v1.Health/Check`` of the server in this container:

    python healthcheck.py [--service NAME] [--target localhost:50051] [--timeout 3]

``--service ""`` (the default) is readiness: SERVING once a model is loaded. ``--service
liveness`` asks whether the process is alive: SERVING while the server runs, NOT_SERVING only
while it drains. The default target is ``localhost:$LATENTFORGE_PORT`` (50051 when unset).

Transport: the probe reads the server's own settings, the same ``LATENTFORGE_*`` variables
``latentforge serve`` reads. Without ``LATENTFORGE_TLS_CERT`` it speaks plaintext. With it, TLS:

- it trusts ``LATENTFORGE_HEALTHCHECK_CA``, else ``LATENTFORGE_TLS_CLIENT_CA`` (mutual TLS: the
  CA that signs client certificates, usually the server's too), else the server's own
  certificate ``LATENTFORGE_TLS_CERT`` (trusted as it is, so a self-signed one works);
- it expects the certificate to name ``LATENTFORGE_HEALTHCHECK_SERVER_NAME``, else the first DNS
  name (or IP address) of the server's certificate: the probe dials localhost, which the
  certificate need not name;
- with mutual TLS (``LATENTFORGE_TLS_CLIENT_CA``) it presents ``LATENTFORGE_HEALTHCHECK_CERT`` and
  ``LATENTFORGE_HEALTHCHECK_KEY``, else the server's own certificate and key. That works when
  the client CA signed the server's certificate and the certificate may authenticate a client
  (no extended key usage, or one that includes clientAuth); otherwise give a client pair.

The health service needs no bearer token (it is open, like reflection).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path
from typing import Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _setting(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def certificate_name(cert: Path) -> str | None:
    """The first DNS name, else IP address, else common name of a PEM certificate.

    CPython's own certificate decoder (the one behind ``SSLSocket.getpeercert``) reads it, so the
    serving image needs no X.509 library. None when it cannot be read.
    """
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    try:
        decoded = decode(str(cert))
    except (OSError, ssl.SSLError, ValueError):
        return None
    alt = decoded.get("subjectAltName", ())
    for kind in ("DNS", "IP Address"):
        names = [value for key, value in alt if key == kind]
        if names:
            return names[0]
    for rdn in decoded.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def credentials(environ: Mapping[str, str]) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, str]]]:
    """Channel credentials and options from the server's settings; (None, []) for plaintext."""
    cert = _setting(environ, "LATENTFORGE_TLS_CERT")
    if cert is None:
        return None, []
    key = _setting(environ, "LATENTFORGE_TLS_KEY")
    client_ca = _setting(environ, "LATENTFORGE_TLS_CLIENT_CA")
    roots = _setting(environ, "LATENTFORGE_HEALTHCHECK_CA") or client_ca or cert
    client_cert = client_key = None
    if client_ca is not None:
        client_cert = _setting(environ, "LATENTFORGE_HEALTHCHECK_CERT") or cert
        client_key = _setting(environ, "LATENTFORGE_HEALTHCHECK_KEY") or (key if client_cert == cert else None)
        if client_key is None:
            raise ValueError("LATENTFORGE_HEALTHCHECK_CERT needs LATENTFORGE_HEALTHCHECK_KEY")
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(roots).read_bytes(),
        private_key=Path(client_key).read_bytes() if client_key else None,
        certificate_chain=Path(client_cert).read_bytes() if client_cert else None,
    )
    name = _setting(environ, "LATENTFORGE_HEALTHCHECK_SERVER_NAME") or certificate_name(Path(cert))
    return creds, [("grpc.ssl_target_name_override", name)] if name else []


def check(target: str, service: str = "", timeout_s: float = 3.0,
          environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Ask the health service once; returns (serving?, what was seen)."""
    try:
        creds, options = credentials(os.environ if environ is None else environ)
    except (OSError, ValueError) as exc:
        return False, f"cannot read the TLS settings: {exc}"
    try:
        channel = (grpc.secure_channel(target, creds, options=options) if creds is not None
                   else grpc.insecure_channel(target))
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.RpcError as exc:
        return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: Sequence[str] | None = None) -> int:
    default_target = f"localhost:{os.environ.get('LATENTFORGE_PORT') or 50051}"
    parser = argparse.ArgumentParser(description="Exit 0 when the gRPC server reports SERVING.")
    parser.add_argument("--target", default=default_target, help=f"host:port (default {default_target})")
    parser.add_argument("--service", default="",
                        help='health service to ask: "" = readiness, a model is loaded (default); '
                             "liveness = the process runs")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    serving, seen = check(args.target, args.service, args.timeout)
    print(f"{args.target}{' ' + args.service if args.service else ''}: {seen}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
