"""The public half of an `ipsec` link's certificate authentication, read while compiling.

`auth cert "FILE" ca "FILE" key secret("NAME")` names two PEM files, relative
to the spec file that says so: the node's own certificate and the CA that must
have signed the remote's. Each must hold one X.509 certificate with an RSA
key (the strongSwan plugins these nodes load verify no ECDSA: PLATFORM.md),
valid at compile time; `ca` must be a CA certificate and `cert` not one.
Anything else is E119 at the string that names the file, so charon never
meets a certificate it cannot use.

What is kept is the certificate re-encoded as PEM (one block, no comments or
other text of the file): the IR, the build's x509/ files and what apply loads
are byte for byte the same. The private key is a secret and never read here.
"""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from hercc import codes
from hercc.diagnostics import Collector
from hercc.source import Span

__all__ = ["MAX_BYTES", "check", "read_certificate"]

MAX_BYTES = 64 * 1024  # a certificate is a few KiB; more is not a certificate


def _read(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_BYTES:
        return f"larger than {MAX_BYTES // 1024} KiB"
    try:
        return path.read_bytes()
    except OSError as exc:
        return exc.strerror or str(exc)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check(data: bytes, *, ca: bool, now: datetime.datetime) -> x509.Certificate | str:
    """The certificate in `data`, or what makes it unusable (as a CA certificate with `ca`)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return "is not a PEM X.509 certificate"
    if len(certs) != 1:
        return f"holds {len(certs)} certificates, not one"
    (cert,) = certs
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        kind = "EC" if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        return f"holds no RSA key ({kind}): the strongSwan plugins of a node verify RSA only"
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    if ca and not _is_ca(cert):
        return "is not a CA certificate (no basicConstraints CA:TRUE)"
    if not ca and _is_ca(cert):
        return "is a CA certificate: name the node's own certificate"
    return cert


def read_certificate(name: str, span: Span, diags: Collector, *, ca: bool) -> str | None:
    """The PEM of the certificate file `name` (relative to span's file), or None after E119."""
    path = Path(span.file).parent / name
    what = "CA certificate" if ca else "certificate"
    data = _read(path)
    if isinstance(data, str):
        diags.error(codes.BAD_CERTIFICATE, f'cannot read the {what} "{name}": {data}', span)
        return None
    found = check(data, ca=ca, now=datetime.datetime.now(datetime.UTC))
    if isinstance(found, str):
        diags.error(codes.BAD_CERTIFICATE, f'the {what} "{name}" {found}', span)
        return None
    return found.public_bytes(Encoding.PEM).decode("ascii")
