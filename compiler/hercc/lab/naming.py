"""The lab's names as a Naming (hercc.resources.naming), and the lab's keys as a KeyLookup.

A lab runs every node on one machine, so the names a node's desired state
uses (desired_state(model, node, naming)) must be unique per node:

  network namespace    <p>-x-<node>-<network>: netns_prefix `<p>-x-<node>-`
  workload namespace   <p>-w-<workload>: workload_netns_prefix `<p>-w-`
  workload veth        hv-<workload> (Naming's own) / eth0
  WireGuard interface  <p>w<i>, fixed per (node, network) when the lab is made
                       (wireguard-go's socket /var/run/wireguard/<IF>.sock is
                       the same in every namespace, so Naming's `wg-<network>`
                       would clash between the nodes)
  gateway tunnel       <p>w<i> too, per (node, gateway) (Naming's `gw-<gateway>`
                       would clash between the nodes that tunnel to one gateway)
  enterprise links     in the node's underlay namespace <p>-n-<node> (links_netns),
                       which stands in for the machine's own

Naming has no field for the WireGuard names (wg_ifname and gw_ifname are
methods, the same on every node), so LabNaming overrides those two methods
with per-node tables.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hercc.diagnostics import LabError
from hercc.keys import psk_for
from hercc.lab.keys import KeySource, key_path
from hercc.lab.topology import member_namespace, node_namespace, workload_namespace
from hercc.resources.naming import Naming
from hercc.sysio.files import write_atomic
from hercc.sysio.process import run


@dataclass(frozen=True)
class LabNaming(Naming):
    """Naming for one node of a lab (prefix `p`)."""

    interfaces: tuple[tuple[str, str], ...] = ()  # (network, WireGuard interface name)
    tunnels: tuple[tuple[str, str], ...] = ()  # (gateway, its tunnel's interface name)

    def wg_ifname(self, network: str) -> str:
        for net, name in self.interfaces:
            if net == network:
                return name
        raise LabError(f"no WireGuard interface name for network {network} on this lab node")

    def gw_ifname(self, gateway: str) -> str:
        for gw, name in self.tunnels:
            if gw == gateway:
                return name
        raise LabError(f"no tunnel interface name for gateway {gateway} on this lab node")


def lab_naming(
    prefix: str, node: str, interfaces: Mapping[str, str], tunnels: Mapping[str, str] | None = None
) -> LabNaming:
    """The Naming of `node` in the lab of `prefix`; `interfaces`: network -> WireGuard name,
    `tunnels`: gateway -> tunnel interface name (Topology.tunnels)."""
    base = Naming()
    return LabNaming(
        netns_prefix=member_namespace(prefix, node, ""),
        workload_netns_prefix=workload_namespace(prefix, ""),
        veth_prefix=base.veth_prefix,
        veth_hashed_prefix=base.veth_hashed_prefix,
        workload_ifname=base.workload_ifname,
        links_netns=node_namespace(prefix, node),
        interfaces=tuple(sorted(interfaces.items())),
        tunnels=tuple(sorted((tunnels or {}).items())),
    )


class LabKeys:
    """The lab's key files (<dir>/<node>.key, written by GeneratedKeys at `up`).

    Both a KeySource (the harness) and a KeyLookup (desired_state, the
    executor). Preshared keys, for a network with `psk on`, are made on first
    use in the layout of `hercc keys` (<dir>/psk/<network>/<a>--<b>.psk).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._public: dict[str, str] = {}

    def private_key_file(self, node: str) -> Path:
        path = self.directory / f"{node}.key"
        if not path.is_file():
            raise LabError(f"the lab has no key for node {node} ({path})")
        return path

    def private_key(self, node: str) -> str | None:
        """A node's key, or a gateway's ("gateway:<name>", lab.keys.key_path); None if absent."""
        path = key_path(self.directory, node)
        try:
            return path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LabError(f"{path}: {exc.strerror or exc}") from None

    def public_key(self, node: str) -> str:
        if node not in self._public:
            private = self.private_key(node)
            if private is None:
                raise LabError(f"the lab has no key for node {node} ({self.directory})")
            done = run(["wg", "pubkey"], input=private + "\n", timeout=5, error=LabError)
            self._public[node] = done.stdout.strip()
        return self._public[node]

    def public_keys(self, nodes: Iterable[str]) -> dict[str, str]:
        return {n: self.public_key(n) for n in nodes}

    def ensure(self, nodes: Iterable[str]) -> None:
        """A key file for every node of `nodes` that has none (a node new to the lab)."""
        for node in nodes:
            path = self.directory / f"{node}.key"
            if path.exists():
                continue
            private = run(["wg", "genkey"], timeout=5, error=LabError).stdout.strip()
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                write_atomic(path, private + "\n", 0o600, exclusive=True)

    def psk(self, network: str, a: str, b: str) -> str | None:
        return psk_for(str(self.directory), network, a, b)


class KeyFiles:
    """The key files of a KeySource (the harness's) as a KeyLookup."""

    def __init__(self, source: KeySource) -> None:
        self.source = source

    def private_key(self, node: str) -> str | None:
        path = self.source.private_key_file(node)
        try:
            return path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise LabError(f"{path}: {exc.strerror or exc}") from None

    def psk(self, network: str, a: str, b: str) -> str | None:
        return self.source.psk(network, a, b)
