"""TLS, mutual TLS and bearer tokens on a real server, with a throwaway CA made by the test."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.rpc.security import SecurityConfigError, channel_credentials, load_tokens
from tests.helpers.processes import health_status
from tests.helpers.servers import start_server

TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a stranger's."""
    from tests.helpers.pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


def _generate(channel: grpc.Channel, metadata=None) -> int:
    stub = pb_grpc.GenerationServiceStub(channel)
    return len(stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1, seed=1), timeout=30,
                             metadata=metadata).samples)


def _secure(server, pki, *, client: bool = True, token: str | None = None) -> grpc.Channel:
    creds = channel_credentials(pki["ca"], pki["client"] if client else None, pki["client_key"] if client else None,
                                token=token)
    host = server.target.replace("127.0.0.1", "localhost")
    return grpc.secure_channel(host, creds)


def test_tls_serves_and_refuses_plaintext(model_repo: Path, pki):
    server = start_server(model_repo, tls_cert=pki["server"], tls_key=pki["server_key"])
    try:
        with _secure(server, pki, client=False) as channel:
            assert _generate(channel) == 1
        with grpc.insecure_channel(server.target) as plain:
            with pytest.raises(grpc.RpcError) as info:
                _generate(plain)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_mutual_tls_requires_a_client_certificate_from_the_ca(model_repo: Path, pki):
    server = start_server(model_repo, tls_cert=pki["server"], tls_key=pki["server_key"], tls_client_ca=pki["ca"])
    try:
        with _secure(server, pki) as channel:
            assert _generate(channel) == 1
        with _secure(server, pki, client=False) as channel:
            with pytest.raises(grpc.RpcError) as info:
                _generate(channel)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        rogue = channel_credentials(pki["ca"], pki["rogue"], pki["rogue_key"])
        with grpc.secure_channel(server.target.replace("127.0.0.1", "localhost"), rogue) as channel:
            with pytest.raises(grpc.RpcError):
                _generate(channel)
    finally:
        server.stop()


def test_bearer_tokens(model_repo: Path, tmp_path: Path, caplog):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# one token per line\n{TOKEN}\n")
    with caplog.at_level(logging.DEBUG):
        server = start_server(model_repo, auth_tokens_file=tokens_file)
    try:
        with grpc.insecure_channel(server.target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                _generate(channel)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer" in info.value.details()
            with pytest.raises(grpc.RpcError) as info:
                _generate(channel, metadata=[("authorization", "Bearer wrong-token-0123456789")])
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as info:  # streaming calls are guarded too
                list(pb_grpc.GenerationServiceStub(channel).GenerateStream(
                    pb.GenerateRequest(model="mnist-dcgan", count=2), timeout=10))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert _generate(channel, metadata=[("authorization", f"Bearer {TOKEN}")]) == 1
            assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING  # probes need no token
    finally:
        server.stop()
    assert TOKEN not in caplog.text  # secrets never reach the logs


def test_tls_and_token_through_the_client(model_repo: Path, pki):
    from services.generation.client import GenerationClient

    server = start_server(model_repo, tls_cert=pki["server"], tls_key=pki["server_key"], auth_tokens=(TOKEN,))
    try:
        target = server.target.replace("127.0.0.1", "localhost")
        with GenerationClient(target, tls_ca=pki["ca"], token=TOKEN) as client:
            assert len(client.generate("mnist-dcgan", 2).samples) == 2
    finally:
        server.stop()


def test_bad_security_settings_are_refused(tmp_path: Path):
    with pytest.raises(SecurityConfigError, match="at least 16 characters"):
        load_tokens(("short",))
    with pytest.raises(SecurityConfigError, match="cannot read the token file"):
        load_tokens((), tmp_path / "missing")
