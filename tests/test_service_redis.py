"""Redis as a shared, protected service: key namespaces keep deployments apart on one Redis, a
password or ACL user and TLS (rediss://) pass through to redis-py, and no log line ever carries
the password. Real redis-server processes (TLS with a throwaway CA made here)."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from services.generation.cache import RedisSampleCache, redact_url
from services.generation.client import GenerationClient
from services.generation.metrics import Metrics
from tests.helpers.processes import free_port
from tests.helpers.servers import start_server

PASSWORD = "Pw-4-redis-never-logged-7x"
ACL_PASSWORD = "acl-user-secret-Q9z-never-logged"


@contextlib.contextmanager
def redis_server(*args: str, url: str, **client_kwargs) -> Iterator[None]:
    """A throwaway redis-server with extra arguments, up once ``url`` answers PING."""
    import redis

    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed (make system-deps)")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(url, socket_timeout=0.5, **client_kwargs).ping():
                    break
            except (redis.exceptions.ConnectionError, OSError):
                assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _log_text(caplog) -> str:
    """Every captured record with its fields and exception text, as one string."""
    lines = []
    for r in caplog.records:
        lines.append(r.getMessage() + " " + json.dumps(getattr(r, "fields", {}), default=str))
        if r.exc_info:
            lines.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(lines)


def test_two_deployments_with_their_own_namespaces_share_one_redis(model_repo, redis_proc):
    a = start_server(model_repo, redis_url=redis_proc.url, cache_namespace="team-a")
    b = start_server(model_repo, redis_url=redis_proc.url, cache_namespace="team-b")
    try:
        with GenerationClient(a.target) as ca, GenerationClient(b.target) as cb:
            made_a = ca.generate("mnist-dcgan", 2, seed=3)
            made_b = cb.generate("mnist-dcgan", 1, seed=3)
            assert made_a.stored and made_b.stored
            for sample in made_a.samples:
                assert ca.get_sample(sample.sample_id).seed == sample.seed
                with pytest.raises(grpc.RpcError) as info:
                    cb.get_sample(sample.sample_id)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert cb.get_sample(made_b.samples[0].sample_id).seed == 3
            with pytest.raises(grpc.RpcError) as info:
                ca.get_sample(made_b.samples[0].sample_id)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        a.stop()
        b.stop()
    r = redis_proc.client()
    keys_a = {k.decode() for k in r.scan_iter("team-a:*")}
    keys_b = {k.decode() for k in r.scan_iter("team-b:*")}
    assert {k for k in keys_a if ":sample:" in k} == {f"team-a:v1:sample:{s.sample_id}" for s in made_a.samples}
    assert {k for k in keys_b if ":sample:" in k} == {f"team-b:v1:sample:{made_b.samples[0].sample_id}"}
    # Rendered outputs of seeded requests are namespaced too: each deployment has its own.
    assert len([k for k in keys_a if k.startswith("team-a:v1:render:")]) == 2
    assert len([k for k in keys_b if k.startswith("team-b:v1:render:")]) == 1


def test_password_and_acl_user_pass_through_and_are_never_logged(model_repo, caplog):
    port = free_port()
    acl_url = f"redis://alice:{ACL_PASSWORD}@127.0.0.1:{port}/0"
    with redis_server("--port", str(port), "--requirepass", PASSWORD,
                      "--user", "alice", "on", f">{ACL_PASSWORD}", "~lf:*", "+@all", "-@dangerous", url=acl_url):
        caplog.set_level(logging.DEBUG)
        for url, user in ((acl_url, "alice"), (f"redis://:{PASSWORD}@127.0.0.1:{port}/0", "default")):
            server = start_server(model_repo, redis_url=url)
            try:
                with GenerationClient(server.target) as client:
                    made = client.generate("mnist-dcgan", 1)
                    assert made.stored, user
                    assert client.get_sample(made.samples[0].sample_id).model == "mnist-dcgan"
            finally:
                server.stop()
        # A wrong password: Generate still answers, ids are UNAVAILABLE, the error is logged - masked.
        wrong = f"redis://alice:wrong-{ACL_PASSWORD}@127.0.0.1:{port}/0"
        server = start_server(model_repo, redis_url=wrong)
        try:
            with GenerationClient(server.target) as client:
                made = client.generate("mnist-dcgan", 1)
                assert not made.stored
                with pytest.raises(grpc.RpcError) as info:
                    client.get_sample(made.samples[0].sample_id)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                assert ACL_PASSWORD not in info.value.details()
        finally:
            server.stop()
    text = _log_text(caplog)
    assert "server_started" in text and "cache_configured" in text and "cache_unavailable" in text
    assert f"redis://alice:***@127.0.0.1:{port}/0" in text and f"redis://:***@127.0.0.1:{port}/0" in text
    assert PASSWORD not in text and ACL_PASSWORD not in text


def test_redact_url_masks_passwords_in_every_url_form():
    assert redact_url("redis://u:p%40ss@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://:p@h:1") == "redis://:***@h:1"
    assert redact_url("rediss://h:1/0?ssl_ca_certs=/ca.pem&password=p") == "rediss://h:1/0?ssl_ca_certs=/ca.pem&password=***"
    assert redact_url("unix:///run/redis.sock?password=p&db=2") == "unix:///run/redis.sock?password=***&db=2"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def _tls_files(folder: Path) -> dict[str, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject: str, public_key, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("redis test CA"))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    out = {"ca": folder / "ca.crt", "cert": folder / "redis.crt", "key": folder / "redis.key"}
    out["ca"].write_bytes(cert("redis test CA", ca_key.public_key(), True).public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(cert("127.0.0.1", key.public_key(), False).public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return out


def test_tls_redis_through_rediss_urls_and_tls_options(model_repo, tmp_path: Path):
    pytest.importorskip("cryptography")
    files = _tls_files(tmp_path)
    port = free_port()
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
    with redis_server("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(files["cert"]),
                      "--tls-key-file", str(files["key"]), "--tls-ca-cert-file", str(files["ca"]),
                      "--tls-auth-clients", "no", "--requirepass", PASSWORD, url=url, ssl_ca_certs=str(files["ca"])):
        # The CA as a URL query parameter (any redis-py URL works) ...
        server = start_server(model_repo, redis_url=f"{url}?ssl_ca_certs={files['ca']}")
        try:
            with GenerationClient(server.target) as client:
                made = client.generate("mnist-dcgan", 1)
                assert made.stored and client.get_sample(made.samples[0].sample_id).model == "mnist-dcgan"
        finally:
            server.stop()
        # ... or as the cache's TLS options; without the CA the server's certificate is refused.
        import asyncio

        from services.generation.cache import CacheUnavailable, SampleRecord, new_sample_id

        async def round_trip(cache: RedisSampleCache) -> bool:
            import numpy as np

            record = SampleRecord(new_sample_id(), "m", 1, np.zeros(4, np.float32), "generate")
            try:
                await cache.put_many([record])
                return (await cache.get(record.sample_id)) is not None
            except CacheUnavailable:
                return False
            finally:
                await cache.close()

        trusted = RedisSampleCache(Metrics(), 60, url, timeout_s=2.0, tls_ca=str(files["ca"]))
        untrusted = RedisSampleCache(Metrics(), 60, url, timeout_s=2.0)
        assert trusted.tls and trusted.url == f"rediss://:***@127.0.0.1:{port}/0"
        assert asyncio.run(round_trip(trusted)) is True
        assert asyncio.run(round_trip(untrusted)) is False
    with pytest.raises(ValueError, match="not rediss://"):
        RedisSampleCache(Metrics(), 60, f"redis://127.0.0.1:{port}/0", tls_ca=str(files["ca"]))
