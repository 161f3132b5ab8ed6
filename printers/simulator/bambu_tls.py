"""TLS for simulated Bambu printers: one EC P-256 key per farm, one self-signed certificate per
printer with the serial as its common name (a real printer's is issued by Bambu's CA, also
CN = serial), and one server SSLContext per certificate, built once.

Signing a P-256 certificate takes about 0.1 ms and the key is shared; an SSLContext takes about
0.6 ms and is made on a printer's first connection. Measured: 1,000 Bambu printers start in
0.25 s, all their contexts would add 0.6 s.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 3650


class FarmKey:
    """The farm's private key, written once as PEM for SSLContext.load_cert_chain (files only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        directory.mkdir(parents=True, exist_ok=True)
        self.key_path = directory / "farm-key.pem"
        self.key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def certificate(self, serial: str, *, generation: int = 0) -> PrinterCertificate:
        """A self-signed certificate for `serial`; another `generation` is another certificate
        (the "cert_changed" fault: a replaced mainboard, or a man in the middle)."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .sign(self.key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        path = self.directory / f"{serial}-{generation}.pem"
        path.write_bytes(pem)
        return PrinterCertificate(self, path, cert.public_bytes(serialization.Encoding.DER))


class PrinterCertificate:
    """One printer certificate and its server SSLContext (made on first use, then kept)."""

    def __init__(self, key: FarmKey, path: Path, der: bytes) -> None:
        self._key = key
        self.path = path
        self.der = der
        self._context: ssl.SSLContext | None = None
        self._ftps_context: ssl.SSLContext | None = None

    @property
    def sha256(self) -> str:
        """The pin a client stores on first use: SHA-256 of the DER certificate, hex."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def pem(self) -> str:
        return self.path.read_text()

    @property
    def context(self) -> ssl.SSLContext:
        """For MQTT."""
        if self._context is None:
            self._context = self._new_context()
        return self._context

    @property
    def ftps_context(self) -> ssl.SSLContext:
        """For FTPS control and data connections, capped at TLS 1.2 as the printers' FTP server
        is: data connections then resume the control session from this context's session
        cache, and no TLS 1.3 session ticket arrives on a data connection the client only
        writes to (unread, it would turn the client's close into a reset: a cut upload)."""
        if self._ftps_context is None:
            self._ftps_context = self._new_context()
            self._ftps_context.maximum_version = ssl.TLSVersion.TLSv1_2
        return self._ftps_context

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.path, self._key.key_path)
        return context
