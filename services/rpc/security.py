"""Transport security and caller authentication for the gRPC port.

* TLS / mutual TLS: server certificate and key from files; with a client CA, every client
  must present a certificate that CA signed (grpc's own ``ssl_server_credentials``).
* Bearer tokens: an optional check of ``authorization: Bearer <token>`` metadata on every
  call of the server's services. A call without a token gets UNAUTHENTICATED, one with an unknown
  token PERMISSION_DENIED. Health and reflection stay open so that probes and tools work.

Tokens are compared in constant time and never logged; only how many are configured is.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Awaitable, Callable, Iterable

import grpc

# Services a caller may reach without a token (Kubernetes probes, grpcurl discovery).
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")


class SecurityConfigError(ValueError):
    """TLS files or token settings cannot be used; the message says which."""


def _read(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if not data.strip():
        raise SecurityConfigError(f"the {what} {path} is empty")
    return data


def server_credentials(cert: Path, key: Path, client_ca: Path | None = None) -> grpc.ServerCredentials:
    """TLS credentials; with `client_ca`, clients must present a certificate it signed (mTLS)."""
    pair = [(_read(key, "TLS key"), _read(cert, "TLS certificate"))]
    if client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=_read(client_ca, "client CA"),
                                       require_client_auth=True)


def channel_credentials(ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                        token: str | None = None) -> grpc.ChannelCredentials:
    """Client side: trust `ca` (system roots if None), present cert/key for mTLS, send a token."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA certificate") if ca else None,
        private_key=_read(key, "TLS key") if key else None,
        certificate_chain=_read(cert, "TLS certificate") if cert else None,
    )
    if token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return creds


def client_channel(target: str, *, tls: bool = False, ca: Path | None = None, cert: Path | None = None,
                   key: Path | None = None, token: str | None = None,
                   options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A client channel: TLS when `tls` or any TLS file is given, plaintext otherwise; a
    bearer token is sent on every call either way."""
    if tls or ca or cert or key:
        channel = grpc.secure_channel(target, channel_credentials(ca, cert, key), options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    if token:
        channel = grpc.intercept_channel(channel, TokenClientInterceptor(token))
    return channel


def load_tokens(tokens: Iterable[str] = (), tokens_file: Path | None = None) -> tuple[str, ...]:
    """Accepted tokens from settings and/or a file (one per line, '#' comments)."""
    found = [t.strip() for t in tokens if t and t.strip()]
    if tokens_file is not None:
        for line in _read(tokens_file, "token file").decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                found.append(line)
    for token in found:
        if len(token) < 16 or any(c.isspace() for c in token):
            raise SecurityConfigError("every bearer token must be at least 16 characters without spaces")
    return tuple(dict.fromkeys(found))


class TokenCheck:
    """The bearer-token check both surfaces make (gRPC metadata, HTTP header): the value of an
    ``authorization`` entry to None (accepted), UNAUTHENTICATED (no bearer token) or
    PERMISSION_DENIED (a token not configured here), compared in constant time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        if not self._tokens:
            raise SecurityConfigError("bearer-token auth is on but no tokens are configured")

    def check(self, header: str) -> grpc.StatusCode | None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return grpc.StatusCode.UNAUTHENTICATED
        presented = token.strip().encode()
        if not any(hmac.compare_digest(presented, t) for t in self._tokens):
            return grpc.StatusCode.PERMISSION_DENIED
        return None


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls (other than health and reflection) that lack a known bearer token."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._check = TokenCheck(tokens)
        self._missing = self._deny(grpc.StatusCode.UNAUTHENTICATED,
                                   "missing bearer token: send metadata 'authorization: Bearer <token>'")
        self._wrong = self._deny(grpc.StatusCode.PERMISSION_DENIED, "the bearer token is not accepted here")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(OPEN_SERVICES):
            return await continuation(details)
        header = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
        refused = self._check.check(header)
        if refused is grpc.StatusCode.UNAUTHENTICATED:
            return await self._denial(self._missing, continuation, details)
        if refused is not None:
            return await self._denial(self._wrong, continuation, details)
        return await continuation(details)

    @staticmethod
    async def _denial(deny: tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler], continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        """The denial of the call's shape: a client-streaming call (an upload) is answered
        without waiting for its messages."""
        handler = await continuation(details)
        return deny[1] if handler is not None and handler.request_streaming else deny[0]

    @staticmethod
    def _deny(code: grpc.StatusCode, message: str) -> tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]:
        """Handlers that answer a call with one status: for unary requests (whatever the
        response) and for streamed requests."""

        async def unary(request, context: grpc.aio.ServicerContext):
            await context.abort(code, message)

        return grpc.unary_unary_rpc_method_handler(unary), grpc.stream_unary_rpc_method_handler(unary)


class TokenClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Client side: add ``authorization: Bearer <token>`` to every call (TLS or plaintext,
    e.g. inside a service mesh that terminates TLS)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression
