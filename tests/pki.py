"""A test CA and certificates made with `openssl`, the way an operator makes them.

`make_ca` writes NAME.pem (self-signed, CA:TRUE) and NAME.key; `make_cert`
writes NAME.pem signed by a CA, with an IP subjectAltName when given (what
an `ipsec` link's remote proves by default: its address), and NAME.key
(PKCS#8, unencrypted). RSA 2048 unless told otherwise.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

RSA = ["-newkey", "rsa:2048"]
ECDSA = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def make_ca(directory: Path, name: str, days: int = 30) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl("req", "-x509", *RSA, "-nodes", "-keyout", str(pair.key), "-out", str(pair.cert),
             "-days", str(days), "-subj", f"/O=Hercules test/CN={name}")  # fmt: skip
    return pair


def make_cert(
    directory: Path, name: str, ca: Pair, ip: str | None = None, key: list[str] = RSA
) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    _openssl("req", *key, "-nodes", "-keyout", str(pair.key), "-out", str(csr),
             "-subj", f"/O=Hercules test/CN={name}")  # fmt: skip
    ext = directory / f"{name}.ext"
    ext.write_text("basicConstraints=CA:FALSE\n" + (f"subjectAltName=IP:{ip}\n" if ip else ""))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-out", str(pair.cert), "-days", "30", "-extfile", str(ext))  # fmt: skip
    return pair
