"""TLS material for local HTTPS services: a self-signed CA and a server certificate signed by it.

The Azure SDK refuses plain HTTP for a registry endpoint, so the local Schema Registry emulator needs a
certificate that clients can verify with ``connection_verify=<ca_file>``. Files live under
``<state-dir>/tls/`` and are reused across runs, so a CA handed to clients once stays valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hubstream.errors import ConfigurationError
from hubstream.files import locked, write_atomically

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
TLS_DIR = "tls"
_CA_DAYS = 3650
_SERVER_DAYS = 397  # the longest validity browsers and strict TLS stacks still accept
_RENEW_BEFORE = dt.timedelta(days=30)


class TlsFiles(NamedTuple):
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def under(cls, state_dir: Path) -> TlsFiles:
        directory = state_dir / TLS_DIR
        return cls(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")


def ensure_tls_files(state_dir: Path, hosts: Iterable[str] = DEFAULT_HOSTS) -> TlsFiles:
    """Return the CA, server certificate and key under ``state_dir``, creating what is missing.

    The CA is created once. The server certificate is re-issued (by the same CA) when it is missing,
    expires within 30 days, or does not name every host in ``hosts``.
    """
    files = TlsFiles.under(state_dir)
    ca_key_file = files.ca_file.with_name("ca-key.pem")
    wanted = _normalise_hosts([*DEFAULT_HOSTS, *hosts])
    files.ca_file.parent.mkdir(parents=True, exist_ok=True)
    with locked(files.ca_file.parent / ".lock"):
        if not (files.ca_file.exists() and ca_key_file.exists()):
            ca_key, ca_cert = _new_ca()
            _write_key(ca_key_file, ca_key)
            _write_cert(files.ca_file, ca_cert)
            files.cert_file.unlink(missing_ok=True)
        ca_key, ca_cert = _load_ca(files.ca_file, ca_key_file)
        if _server_cert_needed(files, ca_cert, wanted):
            key, cert = _new_server_cert(ca_key, ca_cert, wanted)
            _write_key(files.key_file, key)
            _write_cert(files.cert_file, cert)
    return files


def _normalise_hosts(hosts: Iterable[str]) -> list[str]:
    # wildcard bind addresses are not names a client connects to
    return list(dict.fromkeys(h for h in hosts if h and h not in ("0.0.0.0", "::")))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hubstream local CA")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _new_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=_SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _server_cert_needed(files: TlsFiles, ca_cert: x509.Certificate, hosts: list[str]) -> bool:
    if not (files.cert_file.exists() and files.key_file.exists()):
        return True
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc - _RENEW_BEFORE < _now():
        return True
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return any(_general_name(h) not in names for h in hosts)


def _load_ca(cert_file: Path, key_file: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(
            f"{key_file} is not the EC key hubstream generates; delete {cert_file.parent} to start over"
        )
    return key, cert


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomically(path, pem, mode=0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_atomically(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
