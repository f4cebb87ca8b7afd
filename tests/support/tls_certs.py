"""A private certificate authority for TLS tests (HostileUpstream over https, proxies tunnelling TLS).

`make_ca(dir)` creates a CA key and a self-signed CA certificate; `ca.issue(dir, hostnames, ips)`
signs a server certificate with those subjectAltName entries; `self_signed(dir, ...)` makes one that
no CA vouches for (a client trusting only the CA must reject it); `server_context(issued)` is the
server-side `ssl.SSLContext` to hand to `HostileUpstream(ssl_context=...)`.

Keys are EC P-256 (generated in milliseconds, unlike RSA). The certificates carry the extensions
that strict verifiers insist on (Python 3.13's VERIFY_X509_STRICT, rustls, Go): key usages, basic
constraints, subject and authority key identifiers. Validity is short (1 day back, 2 days ahead):
enough for clock skew, and nothing lingers that could be trusted later.

A client trusts the CA with `ssl.create_default_context(cafile=ca.cert_path)`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "IssuedCert", "make_ca", "self_signed", "server_context"]

_BACK = dt.timedelta(days=1)
_AHEAD = dt.timedelta(days=2)


@dataclass(frozen=True)
class IssuedCert:
    """A server certificate and its key, as PEM files."""

    cert_path: Path
    key_path: Path
    cert: x509.Certificate


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - _BACK).not_valid_after(now + _AHEAD)


def _leaf_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    hostnames: Sequence[str],
    ip_addresses: Sequence[str],
) -> x509.CertificateBuilder:
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if not names:
        raise ValueError("a server certificate needs at least one hostname or IP address")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _validity(builder)


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aigw tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _save_leaf(tmp_dir: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> IssuedCert:
    # The serial in the file names lets one directory hold several certificates.
    stem = f"leaf-{cert.serial_number:x}"[:21]
    cert_path, key_path = tmp_dir / f"{stem}.pem", tmp_dir / f"{stem}.key"
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return IssuedCert(cert_path=cert_path, key_path=key_path, cert=cert)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and self-signed CA certificate; `cert_path` is the PEM a client trusts."""

    cert_path: Path
    key_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        tmp_dir: Path,
        hostnames: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
    ) -> IssuedCert:
        """A server certificate for those names, signed by this CA, written under `tmp_dir`."""
        key = _key()
        cn = next(iter(hostnames), None) or next(iter(ip_addresses))
        builder = _leaf_builder(_subject(cn), self.cert.subject, key, hostnames, ip_addresses)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
        )
        return _save_leaf(Path(tmp_dir), builder.sign(self.key, hashes.SHA256()), key)


def make_ca(tmp_dir: Path, common_name: str = "aigw test CA") -> CertificateAuthority:
    """A new CA, its certificate at `tmp_dir/ca.pem` and key at `tmp_dir/ca.key`."""
    tmp_dir = Path(tmp_dir)
    key = _key()
    name = _subject(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    cert_path, key_path = tmp_dir / "ca.pem", tmp_dir / "ca.key"
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return CertificateAuthority(cert_path=cert_path, key_path=key_path, cert=cert, key=key)


def self_signed(
    tmp_dir: Path,
    hostnames: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
) -> IssuedCert:
    """A server certificate signed by its own key: right names, but no CA a client trusts."""
    key = _key()
    cn = next(iter(hostnames), None) or next(iter(ip_addresses))
    name = _subject(cn)
    cert = _leaf_builder(name, name, key, hostnames, ip_addresses).sign(key, hashes.SHA256())
    return _save_leaf(Path(tmp_dir), cert, key)


def server_context(issued: IssuedCert) -> ssl.SSLContext:
    """Server-side TLS context serving `issued`; ALPN offers HTTP/1.1 only (the hostile servers speak
    nothing else, so an HTTP/2-capable client falls back instead of failing)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(issued.cert_path, issued.key_path)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
