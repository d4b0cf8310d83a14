"""A throwaway certificate authority for the TLS tests (``cryptography``; PEM files on disk)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = ("localhost", "127.0.0.1")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(subject: str, issuer_key, issuer_name: x509.Name, key, *, ca: bool = False,
                names: Sequence[str] = ()) -> x509.Certificate:
    """A certificate valid for a day; ``names`` (DNS names or IP addresses) become its SANs."""
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
    if names:
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pair(folder: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    """``folder/NAME.crt`` and ``folder/NAME.key`` (PEM, unencrypted)."""
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def make_pki(folder: Path, server_names: Sequence[str] = LOOPBACK) -> dict[str, Path]:
    """A CA (``ca``), a server certificate for ``server_names`` (``server``, ``server_key``), a
    client certificate (``client``, ``client_key``) and a stranger's self-signed one (``rogue``,
    ``rogue_key``), all written into ``folder``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("latentforge test CA", ca_key, _name("latentforge test CA"), ca_key, ca=True)
    ca_crt, _ = write_pair(folder, "ca", ca, ca_key)
    out = {"ca": ca_crt}
    for name, names in (("server", server_names), ("client", ())):
        key = ec.generate_private_key(ec.SECP256R1())
        out[name], out[f"{name}_key"] = write_pair(
            folder, name, certificate(name, ca_key, ca.subject, key, names=names), key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = certificate("rogue", rogue_key, _name("rogue"), rogue_key)
    out["rogue"], out["rogue_key"] = write_pair(folder, "rogue", rogue, rogue_key)
    return out
