"""The local certificate authority (trustme) behind the HTTPS stand-ins.

msal and botbuilder refuse plain-http authorities, so stand-ins that play Microsoft's login or the
Bot connector serve HTTPS with certificates from this CA. Only local runs trust it: ``trust_in_process``
points this process's TLS clients (ssl's default context, requests, httpx) at a bundle of the
public roots plus this CA; nothing in the app's code knows about it. The CA persists under
``.local/ca`` so that a browser or curl can be told to trust it once.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LOCAL_HOST_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class LocalCA:
    ca: trustme.CA
    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def bundle_path(self) -> Path:
        return self.directory / "bundle.pem"

    def server_context(self, *host_names: str) -> ssl.SSLContext:
        """A TLS server context with a certificate for the given names (loopback by default)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(host_names or LOCAL_HOST_NAMES)).configure_cert(context)
        return context

    def trust_in_process(self) -> Path:
        """Make this process (and its children) trust the CA next to the public roots."""
        for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            os.environ[variable] = str(self.bundle_path)
        return self.bundle_path


def local_ca(directory: Path) -> LocalCA:
    """The CA kept in ``directory`` (created on first use), with its trust bundle written."""
    import certifi

    cert_file, key_file = directory / "ca.pem", directory / "ca-key.pem"
    if cert_file.is_file() and key_file.is_file():
        ca = trustme.CA.from_pem(cert_file.read_bytes(), key_file.read_bytes())
    else:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="Enterprise Connections local CA")
        cert_file.write_bytes(ca.cert_pem.bytes())
        key_file.write_bytes(ca.private_key_pem.bytes())
        key_file.chmod(0o600)
    authority = LocalCA(ca, directory)
    public_roots = Path(certifi.where()).read_bytes()
    authority.bundle_path.write_bytes(public_roots.rstrip(b"\n") + b"\n" + ca.cert_pem.bytes())
    return authority


def new_signing_key() -> rsa.RSAPrivateKey:
    """An RSA key for a stand-in to sign tokens with (RS256)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signing_key_at(path: Path) -> rsa.RSAPrivateKey:
    """The signing key kept in ``path`` (made on first use, readable by its owner only), so that a
    restarted stand-in signs with the key its clients cached."""
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SystemExit(f"{path} does not hold an RSA private key")
        return key
    key = new_signing_key()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key
