"""HaproxyExecutor: a gateway's HAProxy started, changed and stopped for the `haproxy` kind.

SystemExecutor hands it the `haproxy` resources (system_executor.py). Their
attributes are digests (resources/haproxy.py); a desired resource brings its
configuration text as its `content`, and every text this executor has
replaced is kept in memory, so an undo (whose live resource has no content)
can put it back.

  create  the text is staged next to `<runtime>/haproxy.cfg`, checked with
          `haproxy -c -f` and only then put in place (sysio.files, atomic);
          then `haproxy -W -D -S <master socket> -p <pid file> -f <cfg>` in the
          gateway's namespace: master-worker, daemon. It is ready once the
          launcher has exited 0 and the master lists a worker (`show proc`).
  update  `servers` alone (addresses): `set server BE/SRV addr A port P` per
          changed server on the admin socket (the runtime API: no reload, the
          worker stays), then the checked new text in place so that a restart
          keeps it. Anything else: the checked new text in place, then a
          reload by the master (SIGUSR2), waited for until `show proc` counts
          it; a failed reload is an error (the apply rolls back). The master
          re-executes itself and hands the listening sockets to the new worker
          (the admin socket's `expose-fd listeners`); old workers finish their
          established connections, so a reload drops none. A failed
          runtime change or reload puts back what it changed before it
          raises: a failed step is not in apply's undo log.
  delete  SIGTERM to the master found by its PID file (only a process that
          runs our configuration), waited for, then the runtime directory is
          removed; the Restore starts it again with the text it ran.

Every side effect goes through `HaproxySystem` (the System boundary plus the
HAProxy CLI sockets and the master's PID), so tests use a fake.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.system import LinuxSystem, Process
from hercc.plan.executor.wireguard_go import last_line
from hercc.resources.gateway_naming import HaproxyPaths, netns_arg
from hercc.resources.haproxy import config_digest, config_servers
from hercc.resources.model import Resource
from hercc.state.haproxy import HaproxyCli, Procs, UnixHaproxyCli, haproxy_master, show_proc
from hercc.sysio.files import make_dirs, stage
from hercc.sysio.process import netns_argv

__all__ = ["HaproxyExecutor", "HaproxyFailed", "HaproxySystem", "LinuxHaproxySystem"]

START_TIMEOUT = 10.0  # seconds for the launcher to exit and a worker to answer
RELOAD_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class HaproxyFailed(ExecutorError):
    """HAProxy refused a configuration, did not start, reload or stop in time."""


class HaproxySystem(Protocol):
    def run(self, argv: Sequence[str]) -> str: ...

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Process: ...

    def kill(self, pid: int, sig: int) -> None: ...

    def ask(self, path: Path, command: str) -> str:
        """One command on a HAProxy CLI socket; its answer."""
        ...

    def master_pid(self, paths: HaproxyPaths) -> int | None:
        """The master running `paths.config`, by its PID file; None when none does."""
        ...


class LinuxHaproxySystem(LinuxSystem):
    def __init__(self, cli: HaproxyCli | None = None) -> None:
        super().__init__()
        self.cli = cli or UnixHaproxyCli()

    def ask(self, path: Path, command: str) -> str:
        return self.cli.ask(path, command)

    def master_pid(self, paths: HaproxyPaths) -> int | None:
        return haproxy_master(paths)


def _key(r: Resource) -> tuple[str, tuple[str, ...]]:
    return str(r.attrs.get("config")), tuple(r.attrs.get("servers") or ())


def _split(entry: str) -> tuple[str, str, str]:
    """ "be/srv=addr:port" -> ("be/srv", addr, port)."""
    name, _, where = entry.partition("=")
    host, _, port = where.rpartition(":")
    return name, host.strip("[]"), port


class HaproxyExecutor:
    """The `haproxy` kind of one gateway (see the module docstring)."""

    def __init__(
        self,
        system: HaproxySystem,
        paths: HaproxyPaths,
        netns: str,
    ) -> None:
        self.sys = system
        self.paths = paths
        self.netns = netns_arg(netns)
        # texts this executor replaced, for an undo (whose live resources have no content)
        self._texts: dict[tuple[str, tuple[str, ...]], str] = {}

    def _text(self, r: Resource) -> str:
        text = r.content if r.content is not None else self._texts.get(_key(r))
        if text is None:
            raise ExecutorError(f"{r.address}: its configuration text is not known here")
        return text

    def _remember_running(self) -> str | None:
        """The text in place now, kept for an undo (memory only); None if there is none."""
        try:
            text = self.paths.config.read_text(encoding="utf-8")
        except OSError:
            return None
        self._texts.setdefault((config_digest(text), tuple(config_servers(text))), text)
        return text

    def _install(self, text: str) -> None:
        """`text` checked with `haproxy -c`, then in place of the configuration."""
        make_dirs(self.paths.directory, 0o700)
        staged = stage(self.paths.config, text, 0o600)
        try:
            self.sys.run(["haproxy", "-c", "-q", "-f", staged.tmp])
        except OperationError as exc:
            staged.discard()
            raise HaproxyFailed(f"haproxy -c refused the new configuration: {exc}") from None
        staged.commit()

    # ------------------------------------------------------------ create

    def create(self, r: Resource) -> None:
        self._install(self._text(r))
        p = self.paths
        argv = ["haproxy", "-W", "-D", "-S", str(p.master_socket), "-p", str(p.pid_file)]
        argv += ["-f", str(p.config)]
        launcher = self.sys.spawn(netns_argv(self.netns, argv), dict(os.environ), p.log)
        try:
            code: int | None = launcher.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            why = last_line(p.log)
            self._stop()  # nothing of it left behind: a failed create is not undone
            raise HaproxyFailed(f"haproxy did not start (status {code}): {why}")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OperationError):
                if self.sys.master_pid(p) is not None and show_proc(self.sys, p).workers:
                    return
            if time.monotonic() > deadline:
                self._stop()
                raise HaproxyFailed(f"haproxy started no worker within {START_TIMEOUT:g} s")
            time.sleep(0.05)

    # ------------------------------------------------------------ update

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        if not changed:
            return
        text = self._text(after)
        running = self._remember_running()
        if list(changed) == ["servers"]:
            self._set_servers(before, after)
            self._install(text)
            return
        old = show_proc(self.sys, self.paths)
        self._install(text)
        try:
            self._reload(old)
        except OperationError:
            if running is not None:  # this step is not in the undo log: put it back here
                with contextlib.suppress(OperationError):
                    self._install(running)
                    self._reload(show_proc(self.sys, self.paths))
            raise

    def _set_servers(self, before: Resource, after: Resource) -> None:
        """Every changed server through the runtime API; all put back if one fails."""
        was = {_split(e)[0]: e for e in before.attrs.get("servers") or ()}
        done: list[str] = []
        try:
            for entry in sorted(set(after.attrs.get("servers") or ()) - set(was.values())):
                self._set_server(entry)
                done.append(_split(entry)[0])
        except OperationError:
            for name in done:
                with contextlib.suppress(OperationError):
                    self._set_server(was[name])
            raise

    def _set_server(self, entry: str) -> None:
        name, host, port = _split(entry)
        answer = self.sys.ask(self.paths.admin_socket, f"set server {name} addr {host} port {port}")
        if "changed" not in answer and "no need" not in answer:
            raise HaproxyFailed(f"set server {name}: {answer.strip() or 'no answer'}")

    def _reload(self, old: Procs) -> None:
        pid = self.sys.master_pid(self.paths)
        if pid is None:
            raise HaproxyFailed(f"no haproxy master runs {self.paths.config}")
        self.sys.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            now: Procs | None = None
            with contextlib.suppress(OperationError):  # the master re-executes: not yet
                now = show_proc(self.sys, self.paths)
            if now is not None and now.failed > old.failed:
                raise HaproxyFailed(f"haproxy failed to reload: {last_line(self.paths.log)}")
            fresh = now is not None and now.workers and not now.workers & old.workers
            if fresh and now is not None and now.reloads > old.reloads:
                return
            time.sleep(0.05)
        raise HaproxyFailed(f"haproxy did not reload within {RELOAD_TIMEOUT:g} s")

    # ------------------------------------------------------------ delete

    def delete(self, r: Resource) -> Restore:
        self._remember_running()
        self._stop()
        return lambda: self.create(r)

    def _stop(self) -> None:
        pid = self.sys.master_pid(self.paths)
        if pid is not None:
            self.sys.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.sys.master_pid(self.paths) is not None:
                if time.monotonic() > deadline:
                    raise HaproxyFailed(f"haproxy (PID {pid}) did not stop in {STOP_TIMEOUT:g} s")
                time.sleep(0.05)
        shutil.rmtree(self.paths.directory, ignore_errors=True)
