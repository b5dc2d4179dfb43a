"""The project's certificate authority (CA): it signs every kit's device certificate and the local
broker's server certificate.

Why our own CA: a mutual-TLS broker (mosquitto locally) must trust the kits' certificates, and the
certificates moto's `create_keys_and_certificate` makes are signed by no real CA (DESIGN.md, "Known
gaps"). So we issue each kit's key and certificate ourselves and register the certificate with AWS
IoT through `RegisterCertificateWithoutCA`, a real AWS API that moto serves too. The same
certificate then works against AWS IoT Core and against the local broker.

Keys are ECDSA P-256: AWS IoT accepts them, mosquitto and AWSIoTPythonSDK speak them, and one is
made in 0.05 ms where an RSA 2048 key takes about 36 ms (measured on the 2-core machine).
"""

import hashlib
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .exceptions import ProvisioningMisconfigured

CA_CERTIFICATE_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
# A certificate is valid from a little before it is made, so a device whose clock runs slightly
# behind still accepts it.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key, as PEM text. The key is secret: it goes into the
    kit's private bundle and nowhere else."""

    certificate_pem: str
    private_key_pem: str
    fingerprint_sha256: str
    not_after: datetime


def authority_create(*, common_name: str = "AstroPlant project CA", valid_days: int = 3650) -> CertificateAuthority:
    """A new self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _subject(common_name)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(certificate=certificate, private_key=key)


def authority_load(directory: Path) -> CertificateAuthority:
    """The CA kept in `directory` (ca.crt and ca.key, PEM)."""
    try:
        certificate = x509.load_pem_x509_certificate((directory / CA_CERTIFICATE_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), password=None)
    except FileNotFoundError as error:
        raise ProvisioningMisconfigured(
            f"The project CA is missing: {error.filename} does not exist. Set IOT_CA_DIR to the directory "
            f"holding {CA_CERTIFICATE_FILE} and {CA_KEY_FILE}."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisioningMisconfigured(f"The project CA key in {directory} is not an EC key.")
    return CertificateAuthority(certificate=certificate, private_key=key)


def authority_load_or_create(directory: Path) -> CertificateAuthority:
    """The CA in `directory`, creating it first if there is none. Safe when several processes
    (web, worker, test runner) start at once: the CA appears by one atomic rename, and whoever
    loses the race loads the winner's."""
    if not (directory / CA_CERTIFICATE_FILE).exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        authority = authority_create()
        staging = Path(tempfile.mkdtemp(prefix=".ca-", dir=directory.parent))
        _write_private(staging / CA_KEY_FILE, _private_key_pem(authority.private_key))
        (staging / CA_CERTIFICATE_FILE).write_text(authority.certificate_pem)
        try:
            os.rename(staging, directory)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process made it first
    return authority_load(directory)


def project_authority() -> CertificateAuthority:
    """The CA named by the settings: IOT_CA_DIR, created there only where IOT_CA_AUTO_CREATE
    allows it (local development and tests; never production, whose CA is a managed secret)."""
    from django.conf import settings

    directory = Path(settings.IOT_CA_DIR)
    if settings.IOT_CA_AUTO_CREATE:
        return authority_load_or_create(directory)
    return authority_load(directory)


def device_certificate_issue(
    *, authority: CertificateAuthority, common_name: str, valid_days: int
) -> IssuedCertificate:
    """A client certificate for one kit. Its common name is the thing name: mosquitto takes it
    as the username (`use_identity_as_username`), and its ACL grants topics by it."""
    return _issue(
        authority=authority,
        common_name=common_name,
        valid_days=valid_days,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alternative_names=[],
    )


def server_certificate_issue(
    *, authority: CertificateAuthority, hosts: list[str], valid_days: int = 825
) -> IssuedCertificate:
    """A server certificate for the local broker. AWSIoTPythonSDK always checks the broker's host
    name, so every name and address a client dials must be in the SAN (e.g. localhost, 127.0.0.1)."""
    alternative_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alternative_names.append(x509.DNSName(host))
    return _issue(
        authority=authority,
        common_name=hosts[0],
        valid_days=valid_days,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alternative_names=alternative_names,
    )


def certificate_fingerprint(certificate_pem: str) -> str:
    """The SHA-256 of the certificate's DER bytes, in hex: what AWS IoT uses as certificate id."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _issue(
    *,
    authority: CertificateAuthority,
    common_name: str,
    valid_days: int,
    usage: x509.ObjectIdentifier,
    alternative_names: list[x509.GeneralName],
) -> IssuedCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    not_after = now + timedelta(days=valid_days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.private_key.public_key()), critical=False
        )
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    certificate = builder.sign(authority.private_key, hashes.SHA256())
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return IssuedCertificate(
        certificate_pem=certificate_pem,
        private_key_pem=_private_key_pem(key),
        fingerprint_sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        not_after=not_after,
    )


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AstroPlant"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _write_private(path: Path, text: str) -> None:
    # Readable by the owner only, from the moment it exists.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
