"""A big build in parts, written by forked worker processes: the same bytes as one
process writes, every failure landing nothing, and no worker left behind."""

from __future__ import annotations

import fcntl
import gc
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from hercc import backends, writer
from hercc.cli import main as cli
from hercc.diagnostics import OperationError
from hercc.sysio.cpus import usable_cpus
from hercc.sysio.files import mark_top_directory
from tests.clitools import tree
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: a build never forks")

Files = Iterable[tuple[str, str]]


def _children() -> set[int]:
    """This process's child processes, from /proc (workers that outlived a build show here)."""
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return {int(p) for p in fh.read().split()}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", path)
    cli.main(["build", str(path), "-o", str(tmp_path / "lock-settled")])  # writes the lock once
    return path


@pytest.fixture
def writers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[], set[int]]:
    """Record the PID of every process that writes a part; returns the set so far."""
    log = tmp_path / "part-writers"
    write_part = writer._write_part

    def recorded(root: str, part: Callable[[], Files]) -> dict[str, writer.Entry]:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return write_part(root, part)

    monkeypatch.setattr(writer, "_write_part", recorded)
    return lambda: {int(p) for p in log.read_text().split()} if log.exists() else set()


def test_a_build_in_parts_is_byte_for_byte_the_build_in_one(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: Callable[[], set[int]]
) -> None:
    assert cli.main(["build", str(spec), "-o", str(tmp_path / "whole")]) == 0
    assert writers() == set()  # one part: written here, without a fork
    monkeypatch.setattr(backends, "PART_NODES", 1)  # a part per node: four, on the workers
    assert cli.main(["build", str(spec), "-o", str(tmp_path / "parts")]) == 0
    assert writers() and os.getpid() not in writers()
    assert tree(tmp_path / "parts") == tree(tmp_path / "whole")
    assert _children() == set()
    assert gc.get_freeze_count() == 0  # the parent's objects go back to the collector


def test_one_cpu_writes_every_part_here(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: Callable[[], set[int]]
) -> None:
    monkeypatch.setattr(backends, "PART_NODES", 1)
    monkeypatch.setattr(writer, "usable_cpus", lambda: 1)
    assert cli.main(["build", str(spec), "-o", str(tmp_path / "out")]) == 0
    assert writers() == set()
    assert (tmp_path / "out" / "nodes").is_dir()


def _parts(fail: Callable[[], None]) -> list[Callable[[], Files]]:
    def part(i: int) -> Iterator[tuple[str, str]]:
        yield f"nodes/n{i}/node.json", f"{i}\n"
        if i == 2:
            fail()
        yield f"nodes/n{i}/more.json", f"{i}\n"

    return [lambda i=i: part(i) for i in range(4)]  # type: ignore[misc]


def _raise_oserror() -> None:
    raise PermissionError(13, "Permission denied")


def _raise_value_error() -> None:
    raise ValueError("a render failed in a worker")


def _die() -> None:
    os._exit(9)  # as if killed: the worker never answers


@pytest.mark.parametrize(
    ("fail", "error", "message"),
    [
        (_raise_oserror, OperationError, "cannot write .*out: Permission denied"),
        (_raise_value_error, ValueError, "a render failed in a worker"),
        (_die, OperationError, "a worker process ended before its work was done"),
    ],
)
def test_a_part_that_fails_in_a_worker_lands_nothing(
    tmp_path: Path, fail: Callable[[], None], error: type[Exception], message: str
) -> None:
    out = tmp_path / "out"
    writer.write_tree(str(out), [("ir.json", "old\n")])
    before = tree(out)
    with pytest.raises(error, match=message):
        writer.write_tree(str(out), [("ir.json", "new\n")], parts=_parts(fail))
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind
    assert _children() == set()
    assert gc.get_freeze_count() == 0


def test_an_interrupt_here_stops_the_workers_and_lands_nothing(tmp_path: Path) -> None:
    def files() -> Iterator[tuple[str, str]]:
        yield "ir.json", "new\n"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        writer.write_tree(str(tmp_path / "out"), files(), parts=_parts(lambda: None))
    assert list(tmp_path.iterdir()) == []
    assert _children() == set()


# Two workers report their PIDs, then sleep in their tasks; the parent kills itself.
_KILLED_PARENT = """
import os, signal, sys, time
from hercc.sysio.forked import Forked

def task():
    with open(sys.argv[1], "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    time.sleep(60)

with Forked([task, task], 2):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(sys.argv[1]) and len(open(sys.argv[1]).read().split()) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    parent = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_PARENT), str(pids)], timeout=60
    )
    assert parent.returncode == -signal.SIGKILL
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # ours: started by the parent this test ran
        os.kill(pid, signal.SIGKILL)
    assert left == []


def _flags(path: Path) -> int | None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, 0x80086601, bytes(4)))[0])
    except OSError:
        return None
    finally:
        os.close(fd)


def test_nodes_is_marked_as_the_top_of_its_subtrees(spec: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    mark_top_directory(str(probe))
    flags = _flags(probe)
    if flags is None or not flags & 0x00020000:
        pytest.skip(f"the filesystem of {tmp_path} keeps no T attribute (FS_TOPDIR_FL)")
    assert cli.main(["build", str(spec), "-o", str(tmp_path / "out")]) == 0
    nodes_flags = _flags(tmp_path / "out" / "nodes")
    assert nodes_flags is not None and nodes_flags & 0x00020000
    for other in ("gateways", "nodes/alpha"):
        other_flags = _flags(tmp_path / "out" / other)
        assert other_flags is not None and not other_flags & 0x00020000


def test_marking_is_ignored_where_the_filesystem_has_no_such_flag() -> None:
    mark_top_directory("/proc/self")  # ENOTTY: no error, nothing changed
    mark_top_directory("/nonexistent/dir")
