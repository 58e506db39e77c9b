"""A gateway's running HAProxy as a `haproxy` Resource, and HAProxy's CLI sockets.

HAProxy runs in master-worker mode (plan/executor/haproxy.py starts it):
the master's PID is in the PID file of its runtime directory
(resources/gateway_naming.HaproxyPaths), and it runs the configuration file
of that directory. `HaproxyReader.read` finds it and returns the resource
the desired side would build (resources/haproxy.py):

  config   the digest of the file the master runs (`-f`), read from disk;
  servers  from the running worker, `show servers state` on the admin socket
           (what a runtime API change has made, even before any reload).

No master alive under that PID file, or one that runs another file: no
resource (absent). A master that is alive but does not answer is a
StateError: the plan cannot tell what runs.

`HaproxyCli` is the one side effect of talking to HAProxy: one command per
connection on a unix socket, bounded. The admin socket closes after its
answer; the master socket keeps a connection open, so `master` sends
"CMD;quit". `show_proc` reads the master's list of workers.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hercc.resources.gateway_naming import HaproxyPaths
from hercc.resources.haproxy import config_digest, haproxy_resource, server_entry
from hercc.resources.model import Resource
from hercc.state.errors import StateError
from hercc.sysio import procfs

__all__ = ["HaproxyCli", "HaproxyReader", "Procs", "UnixHaproxyCli", "haproxy_master", "show_proc"]

TIMEOUT = 5.0
MAX_ANSWER = 16 << 20


class HaproxyCli(Protocol):
    def ask(self, path: Path, command: str) -> str:
        """Send one command to the CLI socket at `path`; the whole answer. StateError if not."""
        ...


class UnixHaproxyCli:
    """One unix stream connection per command, one deadline for all of it."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout

    def ask(self, path: Path, command: str) -> str:
        deadline = time.monotonic() + self.timeout
        chunks: list[bytes] = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(path))
                sock.sendall(command.encode() + b"\n")
                size = 0
                while True:
                    sock.settimeout(max(deadline - time.monotonic(), 0.01))
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
                    size += len(data)
                    if size > MAX_ANSWER:
                        raise StateError(f"HAProxy at {path}: answer too long")
        except TimeoutError:
            raise StateError(f"HAProxy at {path}: no answer to {command!r} in time") from None
        except OSError as exc:
            raise StateError(f"HAProxy at {path}: {exc.strerror or exc}") from None
        return b"".join(chunks).decode(errors="replace")


def master(cli: HaproxyCli, paths: HaproxyPaths, command: str) -> str:
    """A command on the master socket (which stays open unless told to quit)."""
    return cli.ask(paths.master_socket, f"{command};quit")


@dataclass(frozen=True)
class Procs:
    """The master's `show proc`: its reloads, failed reloads, and current workers."""

    reloads: int
    failed: int
    workers: frozenset[int]


def show_proc(cli: HaproxyCli, paths: HaproxyPaths) -> Procs:
    text = master(cli, paths, "show proc")
    reloads = failed = -1
    workers: set[int] = set()
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line
            continue
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "master":
            reloads = int(fields[2])
            if "[failed:" in line:
                failed = int(line.split("[failed:")[1].split("]")[0])
        elif len(fields) >= 2 and fields[1] == "worker" and section == "# workers":
            workers.add(int(fields[0]))
    if reloads < 0:
        raise StateError(f"HAProxy at {paths.master_socket}: no master in `show proc`")
    return Procs(reloads, failed, frozenset(workers))


def haproxy_master(paths: HaproxyPaths) -> int | None:
    """The PID of the master running `paths.config`, from its PID file; None if none does."""
    try:
        text = paths.pid_file.read_text(encoding="ascii").split()
        pid = int(text[0])
    except (OSError, ValueError, IndexError):
        return None
    args = procfs.cmdline(pid)
    if not args or os.path.basename(args[0]) != "haproxy" or "-W" not in args:
        return None
    configs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-f"]
    return pid if str(paths.config) in configs else None


def servers_state(text: str) -> list[str]:
    """`show servers state` (format 1) as sorted server entries."""
    header: list[str] = []
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("# "):
            header = line[2:].split()
            continue
        fields = line.split()
        if not header or len(fields) != len(header):
            continue
        row = dict(zip(header, fields, strict=True))
        out.append(server_entry(row["be_name"], row["srv_name"], row["srv_addr"], row["srv_port"]))
    return sorted(out)


class HaproxyReader:
    """The `haproxy` resource of one gateway, as it runs (see the module docstring)."""

    def __init__(self, cli: HaproxyCli | None = None) -> None:
        self.cli: HaproxyCli = cli or UnixHaproxyCli()

    def read(self, ns: str, gateway: str, paths: HaproxyPaths) -> Resource | None:
        if haproxy_master(paths) is None:
            return None
        try:
            text = paths.config.read_text(encoding="utf-8")
        except OSError as exc:
            raise StateError(f"cannot read {paths.config}: {exc.strerror or exc}") from None
        servers = servers_state(self.cli.ask(paths.admin_socket, "show servers state"))
        return haproxy_resource(ns, gateway, None, config_digest(text), servers)
