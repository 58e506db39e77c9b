"""wireguard-go processes: started for a node's interfaces, recorded, stopped for sure.

Where the kernel has no WireGuard, the executor runs one wireguard-go per
interface, started in the node's underlay namespace (its UDP socket stays
there). `WireGuardGo` starts it and waits for its UAPI socket, records its
PID in STATE_DIR/<node>.wireguard-go.json (interface -> PID, so a later run
can stop it), and stops it: first it waits for the process to exit by itself
once its TUN is gone, then SIGTERM, then SIGKILL. Every step goes through
the System boundary, so a fake sees it (hercc.sysio.procfs.stop signals at
once and directly). Kept apart from the executor: process bookkeeping, not
resource kinds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hercc.plan.executor.errors import WireGuardStartError
from hercc.plan.executor.system import Process, System
from hercc.state.wireguard.kernel import kernel_unavailable_reason
from hercc.sysio import procfs
from hercc.sysio.process import netns_argv

__all__ = ["WireGuardGo", "last_line", "wireguard_go_pid_file", "wireguard_unavailable_reason"]

START_TIMEOUT = 10.0  # wireguard-go: seconds to create its UAPI socket
EXIT_TIMEOUT = 3.0  # wireguard-go: seconds to exit once its TUN is gone


def wireguard_unavailable_reason(which: Callable[[str], str | None] | None = None) -> str | None:
    """None when WireGuard can be run here (kernel module or wireguard-go), else why not."""
    import shutil

    kernel = kernel_unavailable_reason()
    if kernel is None:
        return None
    if (which or shutil.which)("wireguard-go") is not None:
        return None
    return f"no WireGuard available: {kernel}, and wireguard-go is not installed"


def wireguard_go_pid_file(state_dir: str | os.PathLike[str], node: str) -> Path:
    """Where the executor records the wireguard-go PIDs of `node` (interface -> PID)."""
    return Path(state_dir) / f"{node}.wireguard-go.json"


@dataclass
class _Started:
    pid: int
    proc: Process | None  # None: recorded by an earlier run


class WireGuardGo:
    """The wireguard-go processes of one node, started in `underlay_ns`."""

    def __init__(
        self,
        system: System,
        node: str,
        underlay_ns: str | None,
        socket_dir: Path,
        state_dir: Path,
    ) -> None:
        self.sys = system
        self.node = node
        self.underlay_ns = underlay_ns
        self.socket_dir = socket_dir
        self.state_dir = state_dir
        self._started: dict[str, _Started] = {}

    def _socket(self, ifname: str) -> Path:
        return self.socket_dir / f"{ifname}.sock"

    def _recorded(self) -> dict[str, int]:
        return procfs.read_pid_file(wireguard_go_pid_file(self.state_dir, self.node))

    def _record(self, ifname: str, pid: int | None) -> None:
        data = self._recorded()
        if pid is None:
            data.pop(ifname, None)
        else:
            data[ifname] = pid
        procfs.write_pid_file(wireguard_go_pid_file(self.state_dir, self.node), data)

    def start(self, ifname: str) -> None:
        """Start the wireguard-go of `ifname`, record it, and wait for its UAPI socket."""
        sock = self._socket(ifname)
        if self.sys.exists(sock):
            raise WireGuardStartError(
                f"{sock} exists: a WireGuard interface named {ifname} is already running"
            )
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
        log = self.state_dir / f"{self.node}.{ifname}.log"
        argv = netns_argv(self.underlay_ns, ["wireguard-go", "-f", ifname])
        proc = self.sys.spawn(argv, env, log)
        self._started[ifname] = _Started(proc.pid, proc)
        self._record(ifname, proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.sys.exists(sock):
            code = proc.poll()
            if code is not None:
                self._started.pop(ifname, None)
                self._record(ifname, None)
                raise WireGuardStartError(
                    f"wireguard-go {ifname} exited with status {code}: {last_line(log)}"
                )
            if time.monotonic() > deadline:
                self.stop(ifname)
                raise WireGuardStartError(f"wireguard-go made no {sock} within {START_TIMEOUT:g} s")
            time.sleep(0.02)

    def stop(self, ifname: str) -> None:
        """Make sure the wireguard-go of `ifname` we started or recorded is gone."""
        started = self._started.pop(ifname, None)
        pid = started.pid if started is not None else self._recorded().get(ifname)
        proc = started.proc if started is not None else None
        if pid is not None:
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and self.sys.pid_alive(pid, ifname):
                    self.sys.kill(pid, sig)
                deadline = time.monotonic() + EXIT_TIMEOUT
                while self.sys.pid_alive(pid, ifname) and time.monotonic() < deadline:
                    if proc is not None and proc.poll() is not None:
                        break
                    time.sleep(0.02)
                if (proc is not None and proc.poll() is not None) or not self.sys.pid_alive(
                    pid, ifname
                ):
                    break
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    proc.wait(timeout=EXIT_TIMEOUT)
            self._record(ifname, None)
        sock = self._socket(ifname)
        if self.sys.exists(sock):
            with contextlib.suppress(OSError):
                sock.unlink()


def last_line(log: Path) -> str:
    """The last line of a daemon's log, for an error message."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no output)"
