"""The local CA and server certificate under the state dir."""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import stat
from pathlib import Path

from cryptography import x509

from devstack.tls import ensure_tls_files


def san(cert_file: Path) -> x509.SubjectAlternativeName:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_first_run_creates_a_ca_and_a_server_certificate_for_localhost(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path)
    assert files.ca_file == tmp_path / "tls" / "ca.pem"
    names = san(files.cert_file)
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    for key in (files.key_file, files.ca_file.with_name("ca-key.pem")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_later_runs_reuse_the_files(tmp_path: Path) -> None:
    first = ensure_tls_files(tmp_path)
    contents = [path.read_bytes() for path in first]
    second = ensure_tls_files(tmp_path)
    assert [path.read_bytes() for path in second] == contents


def test_a_new_host_reissues_the_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    first = ensure_tls_files(tmp_path)
    ca = first.ca_file.read_bytes()
    second = ensure_tls_files(tmp_path, hosts=["registry.test"])
    assert second.ca_file.read_bytes() == ca
    assert "registry.test" in san(second.cert_file).get_values_for_type(x509.DNSName)


def test_the_certificate_verifies_strictly_against_the_ca(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path)
    client = ssl.create_default_context(cafile=str(files.ca_file))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.cert_file, files.key_file)
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(client_in, client_out, server_hostname="localhost")
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    # drive the handshake in memory: no sockets needed to prove the chain and the name check
    for _ in range(10):
        for side, out, peer_in in ((client_side, client_out, server_in), (server_side, server_out, client_in)):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
            peer_in.write(out.read())
    peer = client_side.getpeercert()
    assert peer is not None
    assert peer["subjectAltName"] == (("DNS", "localhost"), ("IP Address", "127.0.0.1"))
