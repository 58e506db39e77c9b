"""A reader that goes away (`hercc ... | head -1`) ends hercc quietly, as it ends Unix tools.

Every test runs `python -m hercc` with its stdout a real pipe that is closed
early: hercc exits 141 (128 + SIGPIPE, what a shell shows for `yes | head`)
and prints nothing, not an internal error and not Python's "Exception
ignored ... BrokenPipeError" at shutdown, whether stdout is buffered or not.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.cli.exitcode import ExitCode
from tests.conftest import EXAMPLES

HERCC = [sys.executable, "-m", "hercc"]


def _env(buffered: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _closed_before_any_output(argv: list[str], buffered: bool) -> tuple[int, str]:
    """Run hercc with a stdout pipe whose reader is gone before hercc writes a byte."""
    proc = subprocess.Popen(
        [*HERCC, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(buffered)
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # Python needs far longer to start than this takes
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


@pytest.fixture(scope="module")
def many_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keys directory whose `keys show` is larger than a pipe's buffer (64 KiB)."""
    keys = tmp_path_factory.mktemp("keys")
    public = {f"node{i:05d}": base64.b64encode(i.to_bytes(32, "big")).decode() for i in range(3000)}
    (keys / "public.json").write_text(json.dumps(public), encoding="utf-8")
    return keys


NO_LAB_TOOLS = pytest.mark.skipif(
    not (shutil.which("ip") and shutil.which("wg")), reason="lab status needs ip and wg"
)
COMMANDS = [
    pytest.param(["keys", "show", "--keys", "KEYS"], id="keys show"),
    pytest.param(["route", str(EXAMPLES / "mesh8.herc")], id="route"),
    pytest.param(["check", "--emit-ir", str(EXAMPLES / "mesh8.herc")], id="check --emit-ir"),
    pytest.param(["lab", "status"], id="lab status", marks=NO_LAB_TOOLS),
]


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_reader_gone_before_the_output_ends_hercc_quietly(
    many_keys: Path, command: list[str], buffered: bool
) -> None:
    argv = [str(many_keys) if a == "KEYS" else a for a in command]
    code, err = _closed_before_any_output(argv, buffered)
    assert (code, err) == (ExitCode.BROKEN_PIPE, "")


def test_head_1_reads_one_line_and_hercc_exits_quietly(many_keys: Path) -> None:
    """`hercc keys show --keys K | head -1`: the reader leaves in the middle of the output."""
    proc = subprocess.Popen(
        [*HERCC, "keys", "show", "--keys", str(many_keys)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(buffered=True),
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().decode()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert first.startswith("node00000  ")
    assert (proc.wait(timeout=60), err) == (ExitCode.BROKEN_PIPE, "")


def test_a_closed_stderr_does_not_turn_an_error_into_a_crash(tmp_path: Path) -> None:
    """`hercc check bad.herc 2>&1 | head -0`: the diagnostics cannot be printed either."""
    bad = tmp_path / "bad.herc"
    bad.write_text("network {\n", encoding="utf-8")
    proc = subprocess.Popen(
        [*HERCC, "check", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.wait(timeout=60) == ExitCode.BROKEN_PIPE


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_command_runs_to_its_end_when_nobody_reads(tmp_path: Path) -> None:
    """A lost reader must not stop a change half-way: the build lands, then hercc exits 141."""
    spec = tmp_path / "q.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", spec)
    out = tmp_path / "out"
    argv = ["build", str(spec), "-o", str(out)]
    assert cli.main(argv, _ClosedPipe(), _ClosedPipe()) == ExitCode.BROKEN_PIPE
    assert (out / "manifest.json").is_file() and Path(f"{spec}.lock").is_file()
