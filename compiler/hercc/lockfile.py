"""SPEC.lock: the addresses already handed out, so they never move.

Sorted JSON, meant to be committed like a package lock. Only allocated
values are recorded; pinned ones live in the spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hercc.diagnostics import OperationError
from hercc.ir import dumps

LOCK_VERSION = 1


@dataclass
class Lock:
    """network -> kind ("nodes" / "workloads") -> name -> field -> value."""

    networks: dict[str, dict[str, dict[str, dict[str, str]]]] = field(default_factory=dict)

    def get(self, network: str, kind: str, name: str, key: str) -> str | None:
        return self.networks.get(network, {}).get(kind, {}).get(name, {}).get(key)

    def put(self, network: str, kind: str, name: str, key: str, value: str) -> None:
        net = self.networks.setdefault(network, {"nodes": {}, "workloads": {}})
        net.setdefault(kind, {}).setdefault(name, {})[key] = value

    def to_data(self) -> dict[str, Any]:
        return {"lock_version": LOCK_VERSION, "networks": self.networks}

    def to_json(self) -> str:
        return dumps(self.to_data())


def lock_path(spec_path: str) -> str:
    return spec_path + ".lock"


def read_lock(path: str) -> Lock:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return Lock()
    except (OSError, ValueError) as exc:
        raise OperationError(f"{path}: cannot read the lock file: {exc}") from None
    if not isinstance(data, dict) or data.get("lock_version") != LOCK_VERSION:
        raise OperationError(f"{path}: not a lock file of version {LOCK_VERSION}")
    nets = data.get("networks", {})
    if not _well_formed(nets):
        raise OperationError(
            f"{path}: malformed lock file (delete it to allocate afresh, or restore it from git)"
        )
    return Lock(nets)


def _well_formed(nets: Any) -> bool:
    """network -> "nodes"/"workloads" -> name -> field -> string."""
    if not isinstance(nets, dict):
        return False
    for kinds in nets.values():
        if not isinstance(kinds, dict) or not set(kinds) <= {"nodes", "workloads"}:
            return False
        for names in kinds.values():
            if not isinstance(names, dict):
                return False
            for fields in names.values():
                if not isinstance(fields, dict):
                    return False
                if not all(isinstance(v, str) for v in fields.values()):
                    return False
    return True
