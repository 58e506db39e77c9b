"""Bugs found in review, each pinned by a test."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from hercc import codes
from hercc.cli import main as cli
from tests.conftest import EXAMPLES, compile_text, errors_of


def test_fmt_write_keeps_the_file_mode(tmp_path: Path) -> None:
    spec = tmp_path / "f.herc"
    spec.write_text("network   prod {range 10.0.0.0/16}\n")
    os.chmod(spec, 0o644)
    assert cli.main(["fmt", "--write", str(spec)]) == 0
    assert stat.S_IMODE(spec.stat().st_mode) == 0o644


def test_new_lock_file_follows_the_umask(tmp_path: Path) -> None:
    spec = tmp_path / "r.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", spec)
    old = os.umask(0o022)
    try:
        assert cli.main(["build", str(spec), "-o", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(str(spec) + ".lock").stat().st_mode) == 0o644


def test_huge_pinned_v6_subnet_is_not_enumerated(tmp_path: Path) -> None:
    text = (
        "network p {\n  range6 fd00::/16\n}\n"
        "node a {\n  network p\n  endpoint 192.0.2.1\n  subnet fd00::/32\n}\n"
        "node b {\n  network p\n  endpoint 192.0.2.2\n}\n"
    )
    start = time.perf_counter()
    model = compile_text(tmp_path, text).ir
    assert time.perf_counter() - start < 5
    subnets = {n.name: n.networks[0].subnet6 for n in model.nodes}
    assert subnets == {"a": "fd00::/32", "b": "fd00:1::/64"}  # the first /64 after a's /32


def test_malformed_lock_is_an_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "q.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", spec)
    Path(str(spec) + ".lock").write_text('{"lock_version": 1, "networks": {"demo": "x"}}')
    assert cli.main(["check", str(spec)]) == 1
    assert "malformed lock file" in capsys.readouterr().err


def test_bad_endpoint_is_not_also_missing(tmp_path: Path) -> None:
    text = "network p {\n  range 10.0.0.0/16\n}\nnode a {\n  network p\n  endpoint 192.0.2.1:70000\n}\n"
    found = [d.code for d in errors_of(tmp_path, text)]
    assert codes.BAD_PORT in found and codes.NO_ENDPOINT not in found


def test_json_format_covers_operational_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "q.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", spec)
    assert (
        cli.main(["build", str(spec), "-o", str(tmp_path / "o"), "--frozen", "--format", "json"])
        == 1
    )
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["kind"] == "operation" and "--frozen" in data["error"]


def test_graph_refuses_an_unknown_file_kind(tmp_path: Path) -> None:
    assert (
        cli.main(["graph", str(EXAMPLES / "quickstart.herc"), "-o", str(tmp_path / "g.png")]) == 2
    )
    assert not (tmp_path / "g.png").exists()


def test_secrets_directories_are_private(tmp_path: Path) -> None:
    spec = tmp_path / "q.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", spec)
    keys = tmp_path / "keys"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    assert cli.main(["build", str(spec), "-o", str(tmp_path / "o"), "--keys", str(keys)]) == 0
    secrets = tmp_path / "o/nodes/home/secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700


def test_missing_block_name_reads_cleanly(tmp_path: Path) -> None:
    text = "network p {\n  range 10.0.0.0/16\n}\nenterprise e {\n  vxlan {\n    node a\n  }\n}\n"
    messages = [d.message for d in errors_of(tmp_path, text)]
    assert not any("  " in m for m in messages), messages
