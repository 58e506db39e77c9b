"""Part of pass 2: what two parts of a valid-looking spec would share once deployed.

A key, a UDP socket, an address the overlay routes into itself, an interface
or a namespace name: each check fails here, at check time, what would
otherwise fail (or silently misroute) on the machines.
"""

from __future__ import annotations

import ipaddress

from hercc import ast, codes
from hercc.diagnostics import Collector
from hercc.passes.resolve import Names

# The names the deployment gives networks and workloads. Made in
# backends/wireguard.py (ifname) and plan/desired.py (Naming.netns,
# Naming.workload_netns); repeated here because a pass does not import the
# stages that follow it. Keep them in step.
IFNAME_PREFIX = "wg-"
IFNAMSIZ = 16  # Linux: 15 characters and the NUL
NETNS_PREFIX = "herc-"
WORKLOAD_NETNS_PREFIX = "herc-w-"


def wg_ifname(network: str) -> str:
    return (IFNAME_PREFIX + network)[: IFNAMSIZ - 1]


def check_clashes(spec: ast.Spec, names: Names, diags: Collector) -> None:
    _pubkeys(spec, diags)
    _endpoints(spec, names, diags)
    _endpoints_in_overlay(spec, diags)
    _interface_names(spec, names, diags)
    _namespaces(spec, names, diags)


def _pubkeys(spec: ast.Spec, diags: Collector) -> None:
    first: dict[str, ast.NodeDecl] = {}
    for node in spec.nodes:
        if node.pubkey is None:
            continue
        other = first.setdefault(node.pubkey, node)
        if other is not node:
            diags.error(
                codes.PUBKEY_REUSED,
                f"node {node.name} pins the public key of node {other.name}",
                node.spans["pubkey"],
                f"every node needs its own key pair; {other.name}'s is pinned at "
                f"{other.spans['pubkey']}",
            )


def _endpoints(spec: ast.Spec, names: Names, diags: Collector) -> None:
    """Two nodes dialled at one address and port: one socket cannot be both."""
    first: dict[tuple[str, int], ast.NodeDecl] = {}
    for node in spec.nodes:
        ep = node.endpoint
        if ep is None:
            continue
        # The ports the node listens on, as lower.py gives them.
        nets = [names.networks[n] for n in node.networks if n in names.networks]
        for port in sorted({net.port if ep.port is None else ep.port for net in nets}):
            other = first.setdefault((ep.host, port), node)
            if other is not node:
                diags.error(
                    codes.ENDPOINT_REUSED,
                    f"nodes {other.name} and {node.name} are both dialled at {ep.render(port)}",
                    node.spans["endpoint"],
                    f"node {other.name}'s endpoint is at {other.spans['endpoint']}; "
                    "give each node its own address, or its own port",
                )
                break


def _endpoints_in_overlay(spec: ast.Spec, diags: Collector) -> None:
    """The tunnel would route its own packets into itself."""
    for node in spec.nodes:
        if node.endpoint is None:
            continue
        try:
            addr = ipaddress.ip_address(node.endpoint.host)
        except ValueError:
            continue  # a DNS name: what it resolves to is known only at deploy time
        for net in spec.networks:
            for key, rng in (("range", net.range4), ("range6", net.range6)):
                if rng is not None and addr in rng:
                    diags.error(
                        codes.ENDPOINT_IN_OVERLAY,
                        f"node {node.name}: endpoint {addr} is inside {key} {rng} "
                        f"of network {net.name}",
                        node.spans["endpoint"],
                        "an endpoint is the node's underlay address, outside every overlay "
                        "range: WireGuard cannot reach it through its own tunnel",
                    )


def _interface_names(spec: ast.Spec, names: Names, diags: Collector) -> None:
    """Two networks of one node whose names cut to the same interface name."""
    reported: set[tuple[str, str]] = set()
    for node in spec.nodes:
        taken: dict[str, str] = {}
        for net_name in dict.fromkeys(node.networks):
            if net_name not in names.networks:
                continue
            ifname = wg_ifname(net_name)
            other = taken.setdefault(ifname, net_name)
            if other == net_name or (other, net_name) in reported:
                continue
            reported.add((other, net_name))
            diags.error(
                codes.IFNAME_CLASH,
                f"networks {other} and {net_name} get one interface name, {ifname}, "
                f"on node {node.name}",
                names.networks[net_name].span,
                f"interface names keep {IFNAMSIZ - 1} characters: make the network names "
                f"differ in their first {IFNAMSIZ - 1 - len(IFNAME_PREFIX)}",
            )


def _namespaces(spec: ast.Spec, names: Names, diags: Collector) -> None:
    """A network named w-X and a workload X on one of its nodes: one namespace name."""
    for w in spec.workloads:
        node = names.nodes.get(w.node)
        netns = WORKLOAD_NETNS_PREFIX + w.name
        for net_name in node.networks if node is not None else ():
            if NETNS_PREFIX + net_name != netns or net_name not in names.networks:
                continue
            diags.error(
                codes.NETNS_CLASH,
                f"workload {w.name} and network {net_name} get one namespace, {netns}, "
                f"on node {w.node}",
                w.span,
                f"rename the workload or the network (network {net_name} is at "
                f"{names.networks[net_name].span})",
            )
            break
