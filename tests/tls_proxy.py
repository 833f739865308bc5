"""An HTTPS front for a plain-HTTP test server, with a throwaway self-signed certificate.

Hospitals put a TLS-terminating proxy in front of Orthanc (the Orthanc book's own advice); Debian's
Orthanc 1.10 cannot serve HTTPS itself here (its civetweb crashes on the first TLS handshake under
OpenSSL 3). This proxy is that front: it terminates TLS with the certificate and relays the bytes, so the
client under test talks real TLS to a real PACS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CHUNK = 65536


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A one-day certificate for 127.0.0.1, its own CA: (private key PEM, certificate PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "radflow-test-pacs")])
    now = dt.datetime.now(dt.UTC)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_file, certificate_file = folder / "key.pem", folder / "certificate.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, certificate_file


@contextlib.contextmanager
def https_front(backend_port: int, folder: Path) -> Iterator[tuple[int, Path]]:
    """Serve TLS on a free 127.0.0.1 port, relaying to 127.0.0.1:`backend_port`; yields (port, the
    certificate a client must trust)."""
    key_file, certificate_file = self_signed_certificate(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate_file, key_file)

    class Relay(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                client = context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused our certificate: nothing to relay
                return
            with client, socket.create_connection(("127.0.0.1", backend_port)) as backend:
                upstream = threading.Thread(target=_pump, args=(client, backend), daemon=True)
                upstream.start()
                _pump(backend, client)
                upstream.join(timeout=5)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], certificate_file
    finally:
        server.shutdown()
        server.server_close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until `source` closes, then shut both sockets down (waking the other direction's
    pump; for HTTP the exchange is over once either end closes)."""
    with contextlib.suppress(OSError, ValueError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
    for end in (source, sink):  # the plain socket's shutdown: SSLSocket's would drop its TLS state first
        with contextlib.suppress(OSError):
            socket.socket.shutdown(end, socket.SHUT_RDWR)
