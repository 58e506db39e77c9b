"""The lab's test certificates: a lab CA, and one certificate per workload that serves HTTPS.

Made at `lab up` with the `cryptography` package (ECDSA P-256, valid a
year), under <lab>/certs/: `ca.pem` with its key `ca.key` (0600, kept so
that `lab apply` can issue certificates for workloads it adds), and
`<workload>.pem` with its key `<workload>.key` (0600). A workload's
certificate names the workload as its subject CN (so a client can tell
which replica answered) and carries the https host names of its services
as DNS SANs. The CA is trusted only where the lab says so (the internet
namespace, hercc.lab.internet), never on the machine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hercc.sysio.files import make_dirs, write_atomic

VALID = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hercc lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _ca(
    directory: Path, lab: str, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The lab's CA from `directory`, made there first if it has none."""
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    if cert_file.exists() and key_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_file.read_bytes()), key
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"hercc lab CA {lab}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALID)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    write_atomic(key_file, _pem_key(ca_key), 0o600)
    write_atomic(cert_file, _pem_cert(ca), 0o644)
    return ca, ca_key


def make_certificates(
    directory: Path, lab: str, workloads: Sequence[tuple[str, Sequence[str]]]
) -> tuple[Path, dict[str, CertFiles]]:
    """A certificate per (workload, host names), issued by the lab's CA (made if there is
    none yet); the CA's file and each workload's files."""
    make_dirs(directory, 0o700)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # a little clock skew is fine
    ca, ca_key = _ca(directory, lab, now)
    out: dict[str, CertFiles] = {}
    for workload, hosts in workloads:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(workload))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALID)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(h) for h in sorted(hosts)]), False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        files = cert_files(directory, workload)
        write_atomic(files.key, _pem_key(key), 0o600)
        write_atomic(files.cert, _pem_cert(cert) + _pem_cert(ca), 0o644)
        out[workload] = files
    return directory / "ca.pem", out


def cert_files(directory: Path, workload: str) -> CertFiles:
    return CertFiles(directory / f"{workload}.pem", directory / f"{workload}.key")
