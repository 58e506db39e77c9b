"""The executor's exporter kind: a node's flow exporter, `hercc flows export`, run detached.

hercc.state.exporter_proc says how it runs and where it is recorded.

  create  the config (the resource's attributes) written to
          STATE_DIR/<node>.exporter.config.json, then `python -m hercc flows
          export --node N --state-dir DIR [--netns UNDERLAY]` started detached
          (System.spawn, output to STATE_DIR/<node>.exporter.log) in the host's
          namespaces, its PID recorded in STATE_DIR/<node>.exporter.json. One
          that exits within START_CHECK is an error with its last line; apply
          does not wait for its first poll (Python's start would cost a node's
          apply half a second, a lab's every node's). One that fails later
          shows as missing in the next plan, and its log says why. Killed
          before its first poll, it has changed nothing: the state file is
          still its predecessor's.
  delete  SIGTERM to the recorded process, only while it still runs the
          exporter's arguments in its namespace (a PID is handed out again):
          it exports what it holds and exits; SIGKILL if it lingers past
          STOP_TIMEOUT. The config file goes with it. The Restore starts it again.

Every attribute forces a new one (a restart reads its config once), so there
is no update; a replacement's successor continues the sequence numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.stopping import stop_process
from hercc.plan.executor.system import Process, System
from hercc.plan.executor.wireguard_go import last_line
from hercc.resources.gateway_naming import HOST_NETNS
from hercc.resources.model import Resource
from hercc.state.exporter_proc import ExporterFiles, exporter_argv, read_config
from hercc.sysio import procfs
from hercc.sysio.files import make_dirs, write_atomic

__all__ = ["ExporterFailed", "FlowExporters"]

START_CHECK = 0.3  # seconds: waited for an exporter that cannot start at all to exit
STOP_TIMEOUT = 10.0  # its last export: every flow of the map deleted and sent


class ExporterFailed(ExecutorError):
    """The exporter exited as it started, or would not stop."""


class FlowExporters:
    """The flow exporter of one node (see the module docstring)."""

    def __init__(self, system: System, node: str, state_dir: Path, underlay_ns: str | None) -> None:
        self.sys = system
        self.node = node
        self.files = ExporterFiles(state_dir, node)
        self.netns = underlay_ns
        self._procs: dict[str, Process] = {}  # started by this run: to reap them

    def _argv(self) -> list[str]:
        return exporter_argv(self.node, self.files.state_dir, self.netns)

    def _runs(self, pid: int) -> bool:
        # argv[0] aside: another interpreter path (venv) runs the same exporter
        found = self.sys.argv_in(pid, self.netns or HOST_NETNS)
        return found is not None and found[1:] == self._argv()[1:]

    def _started(self, proc: Process) -> bool:
        data = read_config(self.files.state)
        return data is not None and data.get("pid") == proc.pid

    def create(self, r: Resource) -> None:
        make_dirs(self.files.state_dir, 0o700)
        write_atomic(self.files.config, json.dumps(r.attrs, indent=2, sort_keys=True) + "\n")
        proc = self.sys.spawn(self._argv(), dict(os.environ), self.files.log)
        procfs.write_pid_file(self.files.pid, {self.node: proc.pid})
        self._procs[r.id] = proc
        deadline = time.monotonic() + START_CHECK
        while not self._started(proc) and time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self._procs.pop(r.id, None)
                procfs.write_pid_file(self.files.pid, {})
                last = last_line(self.files.log)
                raise ExporterFailed(f"{r.address}: the exporter exited with status {code}: {last}")
            time.sleep(0.02)

    def delete(self, r: Resource) -> Restore:
        proc = self._procs.pop(r.id, None)
        pid = proc.pid if proc is not None else procfs.read_pid_file(self.files.pid).get(self.node)
        if pid is not None:
            self._stop(pid, proc)
            procfs.write_pid_file(self.files.pid, {})
        with contextlib.suppress(FileNotFoundError):
            self.files.config.unlink()
        return lambda: self.create(r)

    def _stop(self, pid: int, proc: Process | None) -> None:
        if not stop_process(self.sys, pid, lambda: self._runs(pid), proc, STOP_TIMEOUT):
            raise ExporterFailed(f"exporter.{self.node}: the exporter (PID {pid}) did not stop")
