"""A lab's name, its directory, its lock: `hercc lab` commands on one lab never interleave.

Names are DNS labels; each lab keeps state.json, lock, keys/ and nodes/ in
<root>/<name>/. `up`, `apply` and `down` hold the lab's lock (flock), wait
for it with a message, or give up after --lock-timeout. The tests without a
live lab use a root of their own (HERCULES_LAB_DIR); live tests need root,
iproute2, nftables, wireguard-go, wg and ping, and skip otherwise.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.diagnostics import LabError
from hercc.lab import harness, persistent, topology
from hercc.lab.persistent.statefile import LabState, check_name, lab_dir, state_file
from hercc.sysio.lock import LockTimeout, locked
from tests.conftest import EXAMPLES
from tests.labtools import lab, netns_with

QUICKSTART = EXAMPLES / "quickstart.herc"
REASON = harness.missing_requirements()
CLI_REASON = harness.missing_requirements(("ip",))
RUN = f"s{os.getpid()}"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if CLI_REASON is not None:
        pytest.skip(f"hercc lab: {CLI_REASON}")
    monkeypatch.setenv("HERCULES_LAB_DIR", str(tmp_path))
    return tmp_path


def fake_lab(root: Path, name: str) -> LabState:
    """A recorded lab with nothing built: status, down and the lock work on it."""
    directory = root / name
    directory.mkdir(mode=0o700)
    state = LabState(
        name=name,
        prefix=topology.prefix_for_lab(name),
        spec=str(QUICKSTART),
        directory=str(directory),
        keys_dir=str(directory / "keys"),
        created="2026-01-01T00:00:00+00:00",
        status="up",
    )
    (directory / "state.json").write_text(state.to_json(), encoding="utf-8")
    return state


# ---------------------------------------------------------------- names and directories


def test_lab_names_are_dns_labels(root: Path) -> None:
    for good in ("lab", "a", "lab-2", "9x", "a" * 31):
        assert check_name(good) == good
    for bad in ("X.json", "x.json", "Lab", "../x", "-x", "x_y", "a" * 32, ""):
        with pytest.raises(LabError, match="lab name"):
            check_name(bad)
    for argv in (("down", "--name", "x.json"), ("status", "--name", "X.json")):
        code, _, err = lab(*argv)
        assert code == 2 and "lab name 'X.json'" in err.replace("x.json", "X.json"), err
    code, _, err = lab("up", "--name", "x.json", str(QUICKSTART))
    assert code == 2 and "1-31 of a-z 0-9 -" in err
    assert list(root.iterdir()) == []


def test_each_lab_has_a_directory(root: Path) -> None:
    assert lab_dir("x") == root / "x"
    assert state_file("x") == root / "x" / "state.json"
    fake_lab(root, "x")
    fake_lab(root, "x-json")
    (root / "leftover").mkdir()  # no state.json: not a lab
    assert persistent.list_labs() == ["x", "x-json"]


def test_status_lists_a_broken_lab_among_the_others(root: Path) -> None:
    fake_lab(root, "fine")
    (root / "broken").mkdir()
    (root / "broken" / "state.json").write_text("{not json", encoding="utf-8")
    code, out, err = lab("status")
    assert code == 1, err
    assert "lab 'broken': broken: " in out and "unreadable lab state" in out
    assert "lab 'fine': up; " in out and "0/0 present" in out
    code, out, err = lab("status", "--name", "fine")
    assert code == 0 and "lab 'broken'" not in out
    code, _, err = lab("down", "--name", "broken")
    assert code == 0, err
    assert not (root / "broken").exists()


def test_a_lab_of_an_older_hercc_is_named(root: Path) -> None:
    (root / "old.json").write_text("{}", encoding="utf-8")
    for action in ("status", "check", "down"):
        code, _, err = lab(action, "--name", "old")
        assert code == 1 and "made by an older hercc" in err and "old.json" in err, err
    code, out, _ = lab("status")
    assert code == 0 and out.startswith("no labs")


# ---------------------------------------------------------------- the lock


def test_lock_waits_times_out_and_follows_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with locked(path, what="the test"):
        with (
            pytest.raises(LockTimeout, match=f"held by PID {os.getpid()}"),
            locked(path, what="the test", timeout=0),
        ):
            pass
        start = time.monotonic()
        with (
            pytest.raises(LockTimeout, match=r"after waiting 0\.2 s"),
            locked(path, what="the test", timeout=0.2),
        ):
            pass
        assert time.monotonic() - start >= 0.2
    with locked(path, what="the test", timeout=0):  # released
        pass
    # the holder removes the file (as `lab down` removes the lab's directory): a waiter takes
    # the new file, never the old one
    got: list[bool] = []
    with locked(path, what="the test"):
        waiter = threading.Thread(target=lambda: got.append(_take(path)))
        waiter.start()
        time.sleep(0.2)
        path.unlink()
        with locked(path, what="the test"):  # someone else's, on the new file
            time.sleep(0.2)
            assert got == []
    waiter.join(5)
    assert got == [True]
    gone = tmp_path / "gone" / "lock"
    with pytest.raises(FileNotFoundError), locked(gone, what="the test", timeout=0):
        pass


def _take(path: Path) -> bool:
    with locked(path, what="the test", timeout=5):
        return True


def test_down_waits_for_the_lock_or_gives_up(root: Path) -> None:
    fake_lab(root, "busy")
    lock = root / "busy" / "lock"
    with contextlib.ExitStack() as stack:
        stack.enter_context(locked(lock, what="the test"))
        code, _, err = lab("down", "--name", "busy", "--lock-timeout", "0.2")
        assert code == 1 and "lab 'busy' is busy with another `hercc lab` command" in err
        code, _, err = lab("down", "--name", "busy", "--lock-timeout", "0")
        assert code == 1 and "is busy" in err
        assert state_file("busy").exists()
        threading.Timer(0.3, stack.close).start()
        code, _, err = lab("down", "--name", "busy")
    assert code == 0, err
    assert "waiting for lab 'busy'" in err and "is down" in err
    assert not (root / "busy").exists()
    code, _, err = lab("down", "--name", "busy", "--lock-timeout", "x")
    assert code == 2 and "seconds" in err


# ---------------------------------------------------------------- live


def lab_process(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hercc", "lab", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        out.append((p.returncode, err))
    return out


@pytest.fixture
def quick() -> Iterator[LabState]:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    name = RUN + "q"
    persistent.down_lab(name)
    try:
        code, _, err = lab("up", "--name", name, str(QUICKSTART))
        assert code == 0, err
        yield persistent.load_state(name)
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err


@pytest.mark.live
def test_concurrent_applies_then_apply_racing_down(quick: LabState, tmp_path: Path) -> None:
    name = quick.name
    moved = tmp_path / "moved.herc"
    moved.write_text(
        QUICKSTART.read_text(encoding="utf-8").replace(
            "range6 fd42:42::/48\n", "range6 fd42:42::/48\n  port 51829\n"
        ),
        encoding="utf-8",
    )
    results = finished([lab_process("apply", "--name", name, str(moved)) for _ in range(3)])
    for code, err in results:
        assert code == 0 and "Traceback" not in err, err
    assert sum("Apply complete" in err for _, err in results) == 1
    code, out, err = lab("plan", "--name", name, str(moved), "--detailed-exitcode")
    assert code == 0, out + err
    code, out, _ = lab("check", "--name", name)
    assert code == 0, out

    # apply and down at once: whichever goes second sees what the first left
    results = finished(
        [lab_process("apply", "--name", name, str(QUICKSTART)), lab_process("down", "--name", name)]
    )
    (apply_code, apply_err), (down_code, down_err) = results
    assert down_code == 0, down_err
    assert apply_code in (0, 1) and "Traceback" not in apply_err, apply_err
    if apply_code == 1:
        assert f"no lab named {name!r}" in apply_err or "taken down" in apply_err
    assert not lab_dir(name).exists()
    assert netns_with(quick.prefix) == []
