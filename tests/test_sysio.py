"""hercc.sysio: the one subprocess runner, the one atomic writer, processes and PID files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.diagnostics import HerccError, LabError, OperationError
from hercc.sysio import files, procfs
from hercc.sysio.files import write_atomic
from hercc.sysio.process import netns_argv, run, run_attached, start


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- write_atomic


def test_write_atomic_writes_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_atomic(path, "héllo\n")
    assert path.read_bytes() == "héllo\n".encode()
    write_atomic(str(path), b"\x00\xff")
    assert path.read_bytes() == b"\x00\xff"
    assert sorted(tmp_path.iterdir()) == [path]


def test_write_atomic_new_file_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    path = tmp_path / "new"
    write_atomic(path, "x")
    assert mode_of(path) == 0o666 & ~umask()


def test_write_atomic_keeps_an_existing_mode_or_sets_the_given_one(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, "new")
    assert (path.read_text(), mode_of(path)) == ("new", 0o640)
    write_atomic(path, "secret", 0o600)
    assert (path.read_text(), mode_of(path)) == ("secret", 0o600)
    write_atomic(tmp_path / "public", "key", 0o644)
    assert mode_of(tmp_path / "public") == 0o644


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_write_atomic_failure_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "f"
    path.write_text("old")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, failing, fail)
    with pytest.raises(OperationError, match=f"^cannot write {path}: No space left on device$"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert sorted(tmp_path.iterdir()) == [path]


def test_write_atomic_exclusive_creates_only(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_atomic(path, "first", 0o600, exclusive=True)
    assert (path.read_text(), mode_of(path)) == ("first", 0o600)
    with pytest.raises(FileExistsError):
        write_atomic(path, "second", 0o600, exclusive=True)
    assert path.read_text() == "first"
    target = tmp_path / "target"
    link = tmp_path / "link"
    link.symlink_to(target)  # dangling: nothing may be written through it
    with pytest.raises(FileExistsError):
        write_atomic(link, "through", exclusive=True)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "link"]


def test_write_atomic_concurrent_writers_never_share_a_temporary(tmp_path: Path) -> None:
    path = tmp_path / "pids.json"
    errors: list[BaseException] = []

    def writer(text: str) -> None:
        try:
            for _ in range(200):
                write_atomic(path, text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a" * 1000, "b" * 1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_text() in ("a" * 1000, "b" * 1000)
    assert sorted(tmp_path.iterdir()) == [path]


# --------------------------------------------------------------------------- run


def test_run_captures_output_and_passes_input() -> None:
    done = run(["cat"], input="in\n", timeout=5, error=OperationError)
    assert (done.returncode, done.stdout) == (0, "in\n")


def test_run_failure_is_the_callers_error_on_one_line() -> None:
    argv = ["sh", "-c", "echo out; echo first >&2; echo last >&2; exit 3"]
    with pytest.raises(LabError) as info:
        run(argv, timeout=5, error=LabError)
    assert str(info.value) == (
        "`sh -c 'echo out; echo first >&2; echo last >&2; exit 3'` failed: exit 3: first; last"
    )
    with pytest.raises(LabError) as quiet:
        run(["false"], timeout=5, error=LabError)
    assert str(quiet.value) == "`false` failed: exit 1"


def test_run_error_factory_and_accepted_statuses() -> None:
    def error(why: str) -> HerccError:
        return OperationError(f"cannot do it: {why}")

    with pytest.raises(OperationError, match=r"^cannot do it: `false` failed: exit 1$"):
        run(["false"], timeout=5, error=error)
    assert run(["sh", "-c", "exit 2"], timeout=5, error=error, ok=(0, 2)).returncode == 2
    assert run(["sh", "-c", "exit 9"], timeout=5, error=error, check=False).returncode == 9


def test_run_timeout_and_missing_binary_raise_the_callers_error() -> None:
    began = time.monotonic()
    with pytest.raises(LabError, match=r"^`sleep 5` timed out after 0.2 s$"):
        run(["sleep", "5"], timeout=0.2, error=LabError)
    assert time.monotonic() - began < 3
    with pytest.raises(OperationError, match=r"^cannot run `/nonexistent/hercc-tool x`: No such"):
        run(["/nonexistent/hercc-tool", "x"], timeout=5, error=OperationError, check=False)


def test_netns_argv() -> None:
    assert netns_argv("ns1", ["ss", "-Hnlu"]) == ["ip", "netns", "exec", "ns1", "ss", "-Hnlu"]
    assert netns_argv(None, ["true"]) == ["true"]


def test_run_attached_returns_the_exit_status() -> None:
    assert run_attached(["sh", "-c", "exit 7"], error=LabError) == 7
    with pytest.raises(LabError, match=r"^cannot run `/nonexistent/hercc-tool`"):
        run_attached(["/nonexistent/hercc-tool"], error=LabError)


def test_start_detaches_and_logs(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "p.log"
    proc = start(
        [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(30)"],
        log=log,
        env=dict(os.environ),
        error=OperationError,
    )
    try:
        assert os.getsid(proc.pid) == proc.pid  # its own session: it outlives ours
        assert mode_of(log.parent) == 0o700
        deadline = time.monotonic() + 10
        while "started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.read_text() == "started\n"
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(OperationError, match=r"^cannot start `/nonexistent/hercc-tool -f`"):
        start(["/nonexistent/hercc-tool", "-f"], log=log, env={}, error=OperationError)


# --------------------------------------------------------------------------- procfs


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def test_start_time_tells_a_process_apart(sleeper: subprocess.Popen[bytes]) -> None:
    started = procfs.proc_start_time(sleeper.pid)
    assert started is not None
    assert procfs.same_process(sleeper.pid, started)
    assert not procfs.same_process(sleeper.pid, started + 1)  # a recycled PID
    assert procfs.cmdline(sleeper.pid) == ["sleep", "30"]
    assert procfs.comm(sleeper.pid) == "sleep"


def test_a_zombie_and_a_gone_process_have_no_start_time() -> None:
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while procfs.proc_start_time(proc.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procfs.proc_start_time(proc.pid) is None  # exited, not reaped yet: a zombie
    assert procfs.cmdline(proc.pid) is None
    proc.wait()
    assert procfs.proc_start_time(proc.pid) is None
    assert procfs.comm(proc.pid) is None
    procfs.kill(proc.pid, signal.SIGTERM)  # gone: not an error


def test_stop_kills_only_the_recorded_process(sleeper: subprocess.Popen[bytes]) -> None:
    started = procfs.proc_start_time(sleeper.pid)
    assert started is not None
    assert procfs.stop(sleeper.pid, started + 1)  # not ours: "gone", and left alone
    assert sleeper.poll() is None
    assert procfs.stop(sleeper.pid, started, timeout=5)
    assert procfs.proc_start_time(sleeper.pid) is None  # gone, and reaped by stop()


def test_pid_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "n1.wireguard-go.json"
    assert procfs.read_pid_file(path) == {}
    procfs.write_pid_file(path, {"wg-b": 2, "wg-a": 1})
    assert path.read_text() == '{\n  "wg-a": 1,\n  "wg-b": 2\n}\n'
    assert mode_of(path.parent) == 0o700
    assert procfs.read_pid_file(path) == {"wg-a": 1, "wg-b": 2}
    path.write_text('{"wg-a": 1, "wg-b": "2", "wg-c": null}')
    assert procfs.read_pid_file(path) == {"wg-a": 1}
    path.write_text("[1, 2]")
    assert procfs.read_pid_file(path) == {}
    path.write_text("{not json")
    assert procfs.read_pid_file(path) == {}
