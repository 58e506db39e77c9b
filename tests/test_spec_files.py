"""Which files hercc reads as a spec: named as one, regular, bounded, UTF-8 (a BOM is fine).

A key file, a device, a FIFO or a directory, as SPEC or as an `include`, is
refused at once with one precise error, and nothing of it is shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hercc.loader import MAX_SPEC_BYTES
from tests.cliproc import hercc

NET = "network prod {\n  range 10.20.0.0/16\n}\n"
KEY = "oFGx+89izO3OgGSHu4888zUFB6HkxDMkwkyn3SsQL1s="  # the shape of a WireGuard private key


def test_include_of_a_key_file_never_shows_the_key(tmp_path: Path) -> None:
    (tmp_path / "alpha.key").write_text(KEY + "\n")
    (tmp_path / "spec.herc").write_text(NET + 'include "alpha.key"\n')
    proc = hercc("check", "spec.herc", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "spec.herc:4:9: error[E120]: cannot read alpha.key: not a spec file "
        "(hercc reads files named *.herc, *.herc.yaml, *.yaml or *.yml)\n"
    )
    assert KEY not in proc.stdout + proc.stderr
    assert KEY[:8] not in proc.stdout + proc.stderr


def test_a_key_file_given_as_spec_is_refused_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "alpha.key").write_text(KEY + "\n")
    proc = hercc("check", "alpha.key", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "hercc: error: cannot read alpha.key: not a spec file "
        "(hercc reads files named *.herc, *.herc.yaml, *.yaml or *.yml)\n"
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/dev/zero", "a character device"),
        ("pipe.herc", "a FIFO"),
        ("dir.herc", "a directory"),
    ],
)
def test_include_of_a_device_fifo_or_directory_fails_at_once(
    tmp_path: Path, target: str, reason: str
) -> None:
    os.mkfifo(tmp_path / "pipe.herc")  # nobody ever writes to it: reading it would hang
    (tmp_path / "dir.herc").mkdir()
    (tmp_path / "spec.herc").write_text(NET + f'include "{target}"\n')
    proc = hercc("check", "spec.herc", cwd=tmp_path, timeout=20)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"spec.herc:4:9: error[E120]: cannot read {target}: {reason}, not a spec file\n"
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        ("dir", "a directory, not a spec file"),
        ("fifo", "a FIFO, not a spec file"),
        ("huge", f"larger than {MAX_SPEC_BYTES // 2**20} MiB"),
    ],
)
def test_a_spec_that_cannot_be_read_is_one_clear_usage_error(
    tmp_path: Path, make: str, reason: str
) -> None:
    path = tmp_path / "spec.herc"
    if make == "dir":
        path.mkdir()
    elif make == "fifo":
        os.mkfifo(path)
    else:
        with path.open("wb") as fh:  # sparse: no disk space taken
            fh.truncate(MAX_SPEC_BYTES + 1)
    proc = hercc("check", "spec.herc", cwd=tmp_path, timeout=20)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"hercc: error: cannot read spec.herc: {reason}\n"  # not E120 at 0:0


def test_an_include_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "big.herc").open("wb") as fh:
        fh.truncate(MAX_SPEC_BYTES + 1)
    (tmp_path / "spec.herc").write_text(NET + 'include "big.herc"\n')
    proc = hercc("check", "spec.herc", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "spec.herc:4:9: error[E120]: cannot read big.herc: larger than 16 MiB\n"
    )


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        (
            "spec.herc",
            "network prod { range 10.20.0.0/33 }\n",
            'spec.herc:1:22: error[E110]: invalid CIDR "10.20.0.0/33"\n'
            "1 | network prod { range 10.20.0.0/33 }\n",
        ),
        (
            "spec.herc.yaml",
            "network: {prod: {range: 10.20.0.0/33}}\n",
            'spec.herc.yaml:1:25: error[E110]: invalid CIDR "10.20.0.0/33"\n'
            "1 | network: {prod: {range: 10.20.0.0/33}}\n",
        ),
    ],
)
def test_a_utf8_bom_is_accepted_and_positions_ignore_it(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    good = text.replace("/33", "/16")
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + good.encode())
    proc = hercc("check", name, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, f"{name}: ok (1 networks, 0 nodes, 0 workloads)\n")
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    proc = hercc("check", name, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(error)


def test_fmt_of_a_file_that_is_not_utf8_is_one_clear_usage_error(tmp_path: Path) -> None:
    (tmp_path / "spec.herc").write_bytes(b'network prod {\n  farmer "\xff"\n}\n')
    proc = hercc("fmt", "spec.herc", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")  # was 70: UnicodeDecodeError
    assert proc.stderr == "hercc: error: spec.herc: not UTF-8 text (line 2, column 11)\n"


@pytest.mark.parametrize("name", ["spec.herc", "common.herc", "spec.herc.yaml"])
def test_bytes_that_are_not_utf8_are_a_syntax_error_at_the_first(tmp_path: Path, name: str) -> None:
    binary = b'network prod {\n  farmer "\xc3\xa9\xff"\n}\n'  # 0xff after an \u00e9
    spec = name
    if name == "common.herc":
        spec = "main.herc"
        (tmp_path / spec).write_text('include "common.herc"\n')
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + binary)  # after a BOM, too
    proc = hercc("check", spec, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (1, "")  # was E120 at 0:0 for a SPEC
    assert proc.stderr == (
        f"{name}:2:12: error[E100]: not UTF-8 text: byte 0xff\n"
        "1 error found; nothing was written.\n"  # and no source line
    )
