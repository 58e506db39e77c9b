"""The executor's probe kind: a tunnel's liveness probe, a detached `ping` in the tunnel's NS.

hercc.state.probes says why a node's tunnel to a gateway needs one, and how
it runs (`probe_argv`). A probe changes nothing on the node: it is a process.

  create  `ip netns exec NS ping ...` started detached (System.spawn, its
          output to STATE_DIR/<node>.<IF>.probe.log), its PID recorded in
          STATE_DIR/<node>.probes.json ("NS/IF" -> PID); a ping that exits at
          once (no route to its target) is an error.
  delete  SIGTERM to the recorded process, only while it still runs the
          probe's arguments in NS (a PID is handed out again), then SIGKILL
          if it lingers; the Restore starts it again.

A probe's attributes (target, interval) are its arguments: both force a new
one, so there is no update.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.stopping import stop_process
from hercc.plan.executor.system import Process, System
from hercc.plan.executor.wireguard_go import last_line
from hercc.resources.errors import MalformedId
from hercc.resources.gateway_naming import netns_arg
from hercc.resources.ids import InterfaceId
from hercc.resources.model import Resource
from hercc.state.probes import probe_argv, probe_pid_file
from hercc.sysio import procfs
from hercc.sysio.process import netns_argv

__all__ = ["ProbeFailed", "Probes"]

START_CHECK = 0.1  # seconds: ping exits at once when it cannot reach its target at all
STOP_TIMEOUT = 3.0


class ProbeFailed(ExecutorError):
    """A probe exited as it started, or would not stop."""


class Probes:
    """The liveness probes of one node (see the module docstring)."""

    def __init__(self, system: System, node: str, state_dir: Path) -> None:
        self.sys = system
        self.node = node
        self.state_dir = state_dir
        self._procs: dict[str, Process] = {}  # started by this run: to reap them

    def _parts(self, r: Resource) -> tuple[InterfaceId, list[str]]:
        try:
            rid = r.id_as(InterfaceId)
        except MalformedId:
            raise ExecutorError(f"malformed resource id {r.address}") from None
        return rid, probe_argv(str(r.attrs["target"]), int(r.attrs["interval"]))

    def _record(self, ident: str, pid: int | None) -> None:
        path = probe_pid_file(self.state_dir, self.node)
        data = procfs.read_pid_file(path)
        if pid is None:
            data.pop(ident, None)
        else:
            data[ident] = pid
        procfs.write_pid_file(path, data)

    def create(self, r: Resource) -> None:
        rid, argv = self._parts(r)
        log = self.state_dir / f"{self.node}.{rid.ifname}.probe.log"
        proc = self.sys.spawn(netns_argv(netns_arg(rid.ns), argv), dict(os.environ), log)
        self._record(r.id, proc.pid)
        self._procs[r.id] = proc
        deadline = time.monotonic() + START_CHECK
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self._procs.pop(r.id, None)
                self._record(r.id, None)
                raise ProbeFailed(f"{r.address}: ping exited with status {code}: {last_line(log)}")
            time.sleep(0.02)

    def _runs(self, pid: int, rid: InterfaceId, argv: list[str]) -> bool:
        return self.sys.argv_in(pid, rid.ns) == argv

    def delete(self, r: Resource) -> Restore:
        rid, argv = self._parts(r)
        proc = self._procs.pop(r.id, None)
        pid = (
            proc.pid
            if proc is not None
            else procfs.read_pid_file(probe_pid_file(self.state_dir, self.node)).get(r.id)
        )
        if pid is not None:
            self._stop(pid, rid, argv, proc)
            self._record(r.id, None)
        return lambda: self.create(r)

    def _stop(self, pid: int, rid: InterfaceId, argv: list[str], proc: Process | None) -> None:
        if not stop_process(
            self.sys, pid, lambda: self._runs(pid, rid, argv), proc, STOP_TIMEOUT, 0.02
        ):
            raise ProbeFailed(f"probe.{rid.ns}/{rid.ifname}: ping (PID {pid}) did not stop")
