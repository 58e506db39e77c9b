"""A node's flow exporter as a process: its command line, its files, and the running one as a
Resource.

`hercc apply` starts it (plan/executor/flow_exporter.py) when the spec has
`monitor netflow` and the node a dataplane, as

  python -m hercc flows export --node N --state-dir DIR [--netns NS]

(`exporter_argv`), detached, in the host's network namespace and mount
namespace (the bpffs is there: `ip netns exec` would remount /sys); with
`--netns`, the process moves its own sockets into NS (the node's underlay,
where its collectors are reached). Its files, all under the state
directory (`ExporterFiles`):

  <node>.exporter.json         the PID, {"<node>": PID} (sysio.procfs), by the executor
  <node>.exporter.config.json  what the spec chose (ExportConfig.attrs), by the executor,
                               written before the start and never while it runs
  <node>.exporter.state.json   by the process after each poll: its PID, the sequence
                               numbers so far, and whether it stopped cleanly
                               (state/flow_export.py)
  <node>.exporter.log          its output

`read_exporter` gives the one that runs, as

  exporter  "<node>": protocol, collectors (list of "host:port"),
            active_timeout_ms, idle_timeout_ms, sampling

A recorded PID counts only while its process runs exactly `exporter_argv`
for this node and state directory (the interpreter's path aside, which a
different venv may change): a PID handed out again is someone else's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.resources.model import FORCES_NEW, Resource
from hercc.sysio import procfs

__all__ = [
    "ExporterFiles",
    "exporter_argv",
    "exporter_of",
    "read_config",
    "read_exporter",
]

_COMMAND = ["-m", "hercc", "flows", "export"]
_OPTIONS = ["--node", "--state-dir", "--netns"]


@dataclass(frozen=True)
class ExporterFiles:
    """Where a node's exporter is recorded (the module docstring)."""

    state_dir: Path
    node: str

    def _path(self, suffix: str) -> Path:
        return self.state_dir / f"{self.node}.exporter{suffix}"

    @property
    def pid(self) -> Path:
        return self._path(".json")

    @property
    def config(self) -> Path:
        return self._path(".config.json")

    @property
    def state(self) -> Path:
        return self._path(".state.json")

    @property
    def log(self) -> Path:
        return self._path(".log")


def exporter_argv(
    node: str, state_dir: str | os.PathLike[str], netns: str | None, python: str = sys.executable
) -> list[str]:
    """The exporter's command line (state_dir made absolute: the reader compares it)."""
    argv = [python, *_COMMAND, "--node", node, "--state-dir", os.path.abspath(state_dir)]
    return argv + (["--netns", netns] if netns is not None else [])


def exporter_of(argv: Sequence[str]) -> tuple[str, str, str | None] | None:
    """(node, state directory, netns) of an exporter's arguments; None when they are not one's."""
    rest = list(argv[1:])
    if rest[: len(_COMMAND)] != _COMMAND:
        return None
    opts = rest[len(_COMMAND) :]
    if len(opts) not in (4, 6) or opts[0::2] != _OPTIONS[: len(opts) // 2]:
        return None
    netns = opts[5] if len(opts) == 6 else None
    return opts[1], opts[3], netns


def read_config(path: Path) -> dict[str, Any] | None:
    """The attributes in a config file; None when it is missing or no JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_exporter(
    node: str,
    state_dir: Path,
    cmdline: Callable[[int], list[str] | None] = procfs.cmdline,
) -> list[Resource]:
    """The node's running exporter (the module docstring), as an `exporter` Resource."""
    files = ExporterFiles(state_dir, node)
    pid = procfs.read_pid_file(files.pid).get(node)
    if pid is None:
        return []
    found = exporter_of(cmdline(pid) or [])
    if found is None or found[:2] != (node, os.path.abspath(state_dir)):
        return []
    attrs = read_config(files.config)
    if attrs is None:
        return []
    return [Resource("exporter", node, attrs, forces_new=FORCES_NEW["exporter"])]
