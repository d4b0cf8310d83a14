"""TLS, mutual TLS and bearer tokens on a real server, with a throwaway CA made by the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.rpc.security import SecurityConfigError, channel_credentials, load_tokens
from tests.helpers.processes import health_status
from tests.helpers.servers import start_server

TOKEN = "s3cret-token-for-tests-0123456789"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a stranger's."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("latentforge test CA", ca_key, _name("latentforge test CA"), ca_key, ca=True)
    ca_crt, _ = _write(folder, "ca", ca, ca_key)
    out = {"ca": ca_crt}
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        out[name], out[f"{name}_key"] = _write(folder, name, _cert(name, ca_key, ca.subject, key, server=server), key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert("rogue", rogue_key, _name("rogue"), rogue_key)
    out["rogue"], out["rogue_key"] = _write(folder, "rogue", rogue, rogue_key)
    return out


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
    from services.client import GenerationClient

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
