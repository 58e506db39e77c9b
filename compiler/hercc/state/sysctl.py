"""Sysctl: the values under /proc/sys as one network namespace sees them.

`Sysctl` is the boundary the state reader (hercc.state.reader) reads
sysctls through; `ProcSysctl` reads them with one `ip netns exec NS grep`
per namespace. Kept apart from netlink: sysctls are files, not messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from hercc.state.errors import StateError
from hercc.sysio.process import run

__all__ = ["ProcSysctl", "Sysctl", "sysctl_path"]


class Sysctl(Protocol):
    def read(self, ns: str, keys: Iterable[str]) -> dict[str, str]:
        """key -> value inside `ns`; keys that do not exist there are left out."""
        ...


_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+/-]*")


def sysctl_path(key: str) -> str:
    """/proc/sys path of a key: dots separate, unless the key uses slashes (`conf/eth0.5/...`)."""
    if not _SYSCTL_KEY.fullmatch(key) or ".." in key.split("/") or "//" in key:
        raise StateError(f"invalid sysctl key {key!r}")
    rel = key if "/" in key else key.replace(".", "/")
    if ".." in rel.split("/"):
        raise StateError(f"invalid sysctl key {key!r}")
    return f"/proc/sys/{rel}"


class ProcSysctl:
    """Reads /proc/sys inside a namespace with one `ip netns exec NS grep -H ''` call."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def read(self, ns: str, keys: Iterable[str]) -> dict[str, str]:
        paths = {sysctl_path(k): k for k in keys}
        if not paths:
            return {}
        done = run(
            ["grep", "-H", "-s", "-e", "", "--", *paths],
            netns=ns,
            timeout=self.timeout,
            ok=(0, 1, 2),  # grep: 1 nothing, 2 some file missing
            error=lambda why: StateError(f"cannot read sysctls in namespace {ns}: {why}"),
        )
        lines: dict[str, list[str]] = {}
        for line in done.stdout.splitlines():
            path, sep, value = line.partition(":")
            if sep and path in paths:
                lines.setdefault(paths[path], []).append(value)
        return {key: "\n".join(v).strip() for key, v in lines.items()}
