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


Table = dict[str, dict[str, dict[str, dict[str, str]]]]
NETWORK_KINDS = frozenset({"nodes", "workloads"})
GATEWAY_KINDS = frozenset({"gateway", "workloads"})


@dataclass
class Lock:
    """networks: network -> kind ("nodes" / "workloads") -> name -> field -> value.

    gateways: gateway -> kind ("gateway": its own tunnel ranges; "workloads":
    each exposed workload's tunnel addresses) -> name -> field -> value. dns: zone -> field ->
    value (the SOA serial and the digest of the content it numbers). Both are
    written only when not empty, so a spec without gateways keeps its lock.
    """

    networks: Table = field(default_factory=dict)
    gateways: Table = field(default_factory=dict)
    dns: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, network: str, kind: str, name: str, key: str) -> str | None:
        return self.networks.get(network, {}).get(kind, {}).get(name, {}).get(key)

    def put(self, network: str, kind: str, name: str, key: str, value: str) -> None:
        net = self.networks.setdefault(network, {"nodes": {}, "workloads": {}})
        net.setdefault(kind, {}).setdefault(name, {})[key] = value

    def get_gateway(self, gateway: str, kind: str, name: str, key: str) -> str | None:
        return self.gateways.get(gateway, {}).get(kind, {}).get(name, {}).get(key)

    def put_gateway(self, gateway: str, kind: str, name: str, key: str, value: str) -> None:
        self.gateways.setdefault(gateway, {}).setdefault(kind, {}).setdefault(name, {})[key] = value

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"lock_version": LOCK_VERSION, "networks": self.networks}
        if self.gateways:
            data["gateways"] = self.gateways
        if self.dns:
            data["dns"] = self.dns
        return data

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
    gateways = data.get("gateways", {})
    dns = data.get("dns", {})
    if not (
        _well_formed(nets, NETWORK_KINDS)
        and _well_formed(gateways, GATEWAY_KINDS)
        and _strings(dns, depth=2)
    ):
        raise OperationError(
            f"{path}: malformed lock file (delete it to allocate afresh, or restore it from git)"
        )
    return Lock(nets, gateways, dns)


def _well_formed(table: Any, kinds_allowed: frozenset[str]) -> bool:
    """owner -> kind (one of kinds_allowed) -> name -> field -> string."""
    if not isinstance(table, dict):
        return False
    for kinds in table.values():
        if not isinstance(kinds, dict) or not set(kinds) <= kinds_allowed:
            return False
        if not all(_strings(names, depth=2) for names in kinds.values()):
            return False
    return True


def _strings(value: Any, depth: int) -> bool:
    """`depth` levels of dicts whose leaves are strings."""
    if depth == 0:
        return isinstance(value, str)
    return isinstance(value, dict) and all(_strings(v, depth - 1) for v in value.values())
