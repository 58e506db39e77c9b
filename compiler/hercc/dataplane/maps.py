"""What a node's dataplane maps hold, per network namespace: maps.json.

Every network a node is in has its own namespace (Naming.netns), with its
WireGuard interface and its workloads' veths, so each gets its own programs
and maps. Per namespace:

* interfaces: where programs attach, and with which entry point. A WireGuard
  device is layer 3 (TUN under wireguard-go): always TC, and with
  `fastpath xdp` the entry says so in `fallback`. A workload veth takes XDP
  with `fastpath xdp`, else TC. A gateway tunnel only accounts (its traffic
  must pass the node's nftables rules), and is attached only with netflow on.
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
from hercc.dataplane.program import ACCOUNT_TC_L3, FASTPATH_TC_ETH, FASTPATH_TC_L3, FASTPATH_XDP
from hercc.resources.naming import Naming

__all__ = ["KIND_LOCAL", "node_maps", "route_count"]

KIND_LOCAL = "local"
KIND_WIREGUARD = "wireguard"
KIND_VETH = "veth"
KIND_GATEWAY_TUNNEL = "gateway-tunnel"
XDP_FALLBACK = "layer-3 device (no Ethernet header): XDP cannot run here, TC does"


def _host(address: str) -> str:
    """An address as a host prefix: /32 or /128."""
    return str(ipaddress.ip_network(address))


def _route_key(route: dict[str, Any]) -> tuple[int, int, int]:
    net = ipaddress.ip_network(route["prefix"])
    return (net.version, int(net.network_address), net.prefixlen)


def _namespace(
    model: ir.IR, node: ir.Node, m: ir.Membership, naming: Naming
) -> dict[str, Any]:
    net = next(n for n in model.networks if n.name == m.network)
    workloads = sorted(
        (w for w in model.workloads if w.node == node.name and w.network == m.network),
        key=lambda w: w.name,
    )
    tunnels = sorted(
        ((gw, t) for gw in model.gateways for t in gw.tunnels
         if t.node == node.name and t.network == m.network),
        key=lambda pair: pair[0].name,
    )  # fmt: skip
    xdp = model.fastpath == "xdp"
    wg = naming.wg_ifname(m.network)
    wg_entry: dict[str, Any] = {
        "name": wg,
        "kind": KIND_WIREGUARD,
        "layer": 3,
        "hook": "tc",
        "program": FASTPATH_TC_L3,
    }
    if xdp:
        wg_entry["fallback"] = XDP_FALLBACK
    interfaces = [wg_entry]
    for w in workloads:
        interfaces.append(
            {
                "name": naming.veth_host(w.name),
                "kind": KIND_VETH,
                "layer": 2,
                "hook": "xdp" if xdp else "tc",
                "program": FASTPATH_XDP if xdp else FASTPATH_TC_ETH,
            }
        )
    if model.netflow is not None:
        for gw, _ in tunnels:
            interfaces.append(
                {
                    "name": naming.gw_ifname(gw.name),
                    "kind": KIND_GATEWAY_TUNNEL,
                    "layer": 3,
                    "hook": "tc",
                    "program": ACCOUNT_TC_L3,
                }
            )

    routes: list[dict[str, Any]] = []
    local = [a for a in (m.address, m.address6) if a is not None]
    local += [f.tunnel_address for _, t in tunnels for f in t.forwards]
    for address in sorted(set(local)):
        routes.append({"prefix": _host(address), "interface": None, "kind": KIND_LOCAL})
    if m.forwarding or workloads:
        for w in workloads:
            for address in (w.address, w.address6):
                if address is not None:
                    routes.append(
                        {
                            "prefix": _host(address),
                            "interface": naming.veth_host(w.name),
                            "kind": KIND_VETH,
                        }
                    )
        for cidr in (net.range, net.range6):
            if cidr is not None:
                routes.append({"prefix": cidr, "interface": wg, "kind": KIND_WIREGUARD})
    routes.sort(key=_route_key)

    owners: dict[str, str] = {}
    for other in model.nodes:
        for om in other.networks:
            if om.network == m.network:
                for address in (om.address, om.address6):
                    if address is not None:
                        owners[address] = other.name
    for w in model.workloads:
        if w.network == m.network:
            for address in (w.address, w.address6):
                if address is not None:
                    owners[address] = w.node
    return {
        "network": m.network,
        "interfaces": interfaces,
        "routes": routes,
        "address_to_node": owners,
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
