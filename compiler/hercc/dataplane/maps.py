"""What a node's dataplane maps hold, per network namespace: maps.json.

Every network a node is in has its own namespace (Naming.netns), with its
WireGuard interface and its workloads' veths, so each gets its own programs
and maps. Per namespace:

* interfaces: one entry per program on a hook of an interface, with its
  entry point. A WireGuard device is layer 3 (TUN under wireguard-go):
  always TC, and with `fastpath xdp` the entry says so in `fallback`. A
  workload veth takes TC with `fastpath tc`; with `fastpath xdp` it takes
  XDP, then TC behind it (`behind_xdp`: what XDP passes, a packet towards
  the WireGuard device above all, TC forwards). Its XDP runs in native
  (driver) mode, `xdp_mode`, which needs the veth's other end, `peer`
  ("NS/IF"), with TX checksum offload off and GRO on (PLATFORM.md), and a
  frame that fits a page: above NATIVE_XDP_MAX_MTU it is generic, with the
  reason in `fallback`. A gateway tunnel only accounts (its traffic must
  pass the node's nftables rules), and is attached only with netflow on.
* routes: the LPM trie. The node's own addresses (on its WireGuard device
  and on its gateway tunnels) are `local`: the stack takes them. A workload's
  address goes to its veth; the rest of the network's range to the WireGuard
  device. A namespace that does not forward (no workloads, not a relay)
  gets only its local routes: the kernel would not forward there either.
* address_to_node: every overlay address of the network, to the node that
  has it (a node's own, and its workloads'), for the flow exporter's labels.

Interface names are the default Naming's; a lab renames them when it loads.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hercc import ir
from hercc.dataplane.program import (
    ACCOUNT_TC_L3,
    FASTPATH_TC_AFTER_XDP,
    FASTPATH_TC_ETH,
    FASTPATH_TC_L3,
    FASTPATH_XDP,
)
from hercc.resources.naming import Naming

__all__ = [
    "KIND_LOCAL",
    "NATIVE_XDP_MAX_MTU",
    "XDP_GENERIC",
    "XDP_NATIVE",
    "node_maps",
    "route_count",
]

KIND_LOCAL = "local"
KIND_WIREGUARD = "wireguard"
KIND_VETH = "veth"
KIND_GATEWAY_TUNNEL = "gateway-tunnel"
XDP_FALLBACK = "layer-3 device (no Ethernet header): XDP cannot run here, TC does"
BEHIND_XDP = "forwards what XDP passes: XDP cannot redirect to a layer-3 device (WireGuard), TC can"
XDP_NATIVE = "native"
XDP_GENERIC = "generic"
# veth's native XDP takes a frame in one page: 4096 - 256 headroom - 320 skb_shared_info - 14
NATIVE_XDP_MAX_MTU = 3506


def _host(address: str) -> str:
    """An address as a host prefix: /32 or /128."""
    return str(ipaddress.ip_network(address))


def _route_key(route: dict[str, Any]) -> tuple[int, int, int]:
    net = ipaddress.ip_network(route["prefix"])
    return (net.version, int(net.network_address), net.prefixlen)


def _present(*addresses: str | None) -> list[str]:
    return [a for a in addresses if a is not None]


def _xdp_mode(m: ir.Membership, peer: str) -> dict[str, Any]:
    """Native XDP on a workload veth, unless its MTU is too big for it."""
    if m.mtu > NATIVE_XDP_MAX_MTU:
        reason = f"MTU {m.mtu} is above the {NATIVE_XDP_MAX_MTU} native XDP on a veth takes"
        return {"xdp_mode": XDP_GENERIC, "fallback": reason}
    return {"xdp_mode": XDP_NATIVE, "peer": peer}


def _interfaces(
    model: ir.IR,
    m: ir.Membership,
    workloads: list[ir.Workload],
    gateways: list[str],
    naming: Naming,
) -> list[dict[str, Any]]:
    xdp = model.fastpath == "xdp"
    wg: dict[str, Any] = {
        "name": naming.wg_ifname(m.network),
        "kind": KIND_WIREGUARD,
        "layer": 3,
        "hook": "tc",
        "program": FASTPATH_TC_L3,
    }
    if xdp:
        wg["fallback"] = XDP_FALLBACK
    interfaces = [wg]
    for w in workloads:
        veth = {"name": naming.veth_host(w.name), "kind": KIND_VETH, "layer": 2}
        if not xdp:
            interfaces.append({**veth, "hook": "tc", "program": FASTPATH_TC_ETH})
            continue
        peer = f"{naming.workload_netns(w.name)}/{naming.veth_workload(w.name)}"
        interfaces.append({**veth, "hook": "xdp", "program": FASTPATH_XDP, **_xdp_mode(m, peer)})
        interfaces.append(
            {**veth, "hook": "tc", "program": FASTPATH_TC_AFTER_XDP, "behind_xdp": BEHIND_XDP}
        )
    if model.netflow is not None:
        for gateway in gateways:
            interfaces.append(
                {
                    "name": naming.gw_ifname(gateway),
                    "kind": KIND_GATEWAY_TUNNEL,
                    "layer": 3,
                    "hook": "tc",
                    "program": ACCOUNT_TC_L3,
                }
            )
    return interfaces


def _routes(
    net: ir.Network,
    m: ir.Membership,
    workloads: list[ir.Workload],
    tunnels: list[ir.Tunnel],
    naming: Naming,
) -> list[dict[str, Any]]:
    local = _present(m.address, m.address6)
    local += [f.tunnel_address for t in tunnels for f in t.forwards]
    routes: list[dict[str, Any]] = [
        {"prefix": _host(a), "interface": None, "kind": KIND_LOCAL} for a in sorted(set(local))
    ]
    if m.forwarding or workloads:
        for w in workloads:
            veth = naming.veth_host(w.name)
            for a in _present(w.address, w.address6):
                routes.append({"prefix": _host(a), "interface": veth, "kind": KIND_VETH})
        wg = naming.wg_ifname(m.network)
        for cidr in _present(net.range, net.range6):
            routes.append({"prefix": cidr, "interface": wg, "kind": KIND_WIREGUARD})
    return sorted(routes, key=_route_key)


def _owners(model: ir.IR, network: str) -> dict[str, str]:
    owners: dict[str, str] = {}
    for node in model.nodes:
        for m in node.networks:
            if m.network == network:
                owners.update(dict.fromkeys(_present(m.address, m.address6), node.name))
    for w in model.workloads:
        if w.network == network:
            owners.update(dict.fromkeys(_present(w.address, w.address6), w.node))
    return owners


def _namespace(model: ir.IR, node: ir.Node, m: ir.Membership, naming: Naming) -> dict[str, Any]:
    net = next(n for n in model.networks if n.name == m.network)
    workloads = sorted(
        (w for w in model.workloads if w.node == node.name and w.network == m.network),
        key=lambda w: w.name,
    )
    tunnels = sorted(
        (
            (gw.name, t)
            for gw in model.gateways
            for t in gw.tunnels
            if t.node == node.name and t.network == m.network
        ),
        key=lambda pair: pair[0],
    )
    return {
        "network": m.network,
        "interfaces": _interfaces(model, m, workloads, [g for g, _ in tunnels], naming),
        "routes": _routes(net, m, workloads, [t for _, t in tunnels], naming),
        "address_to_node": _owners(model, m.network),
    }


def node_maps(model: ir.IR, node: ir.Node, naming: Naming | None = None) -> dict[str, Any]:
    """maps.json's data for `node`: its namespaces by name (module docstring)."""
    naming = naming or Naming()
    return {
        "node": node.name,
        "namespaces": {
            naming.netns(m.network): _namespace(model, node, m, naming)
            for m in sorted(node.networks, key=lambda m: m.network)
        },
    }


def route_count(maps: dict[str, Any]) -> int:
    """The most routes of one of the node's namespaces: what each LPM trie must hold."""
    return max((len(ns["routes"]) for ns in maps["namespaces"].values()), default=0)
