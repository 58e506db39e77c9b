"""A naive peer layout, standing in for passes/routing.py in lab tests.

In each network one relay (the first public node with `relay`, else the first
public node, by name) peers with every member and forwards. Every other
member puts the whole range behind the relay and peers directly, with the
peer's own subnet (more specific, so it wins), with every member it can reach
on the underlay: public-public and nat-public pairs, minus `unreachable`
links. Every peer with an endpoint gets the network's keepalive.
"""

from __future__ import annotations

import dataclasses

from hercc import ir
from hercc.diagnostics import LabError


def _subnets(m: ir.Membership) -> tuple[str, ...]:
    return tuple(s for s in (m.subnet, m.subnet6) if s is not None)


def naive_mesh(model: ir.IR) -> ir.IR:
    blocked = {frozenset((lk.a, lk.b)) for lk in model.underlay.links if lk.cost is None}
    new_members: dict[tuple[str, str], ir.Membership] = {}
    for net in model.networks:
        ranges = tuple(r for r in (net.range, net.range6) if r is not None)
        keepalive = max(1, net.keepalive_ms // 1000) if net.keepalive_ms else None
        members = [
            (node, m) for node in model.nodes for m in node.networks if m.network == net.name
        ]
        public = [node for node, _ in members if node.kind == "public"]
        if not public:
            raise LabError(f"network {net.name}: no public node to relay through")
        relay = next((n for n in public if n.relay), public[0])

        def reachable(a: ir.Node, b: ir.Node) -> bool:
            if frozenset((a.name, b.name)) in blocked:
                return False
            return a.kind == "public" or b.kind == "public"

        for node, m in members:
            peers = []
            for other, om in members:
                if other.name == node.name:
                    continue
                if other.name == relay.name and node.name != relay.name:
                    if not reachable(node, other):
                        raise LabError(f"{node.name} cannot reach the relay {relay.name}")
                    allowed = ranges
                elif node.name == relay.name or reachable(node, other):
                    allowed = _subnets(om)
                else:
                    continue
                peers.append(
                    ir.Peer(
                        node=other.name,
                        pubkey=other.pubkey,
                        endpoint=om.endpoint,
                        allowed_ips=allowed,
                        keepalive_s=keepalive if om.endpoint is not None else None,
                    )
                )
            new_members[(node.name, net.name)] = dataclasses.replace(
                m, peers=tuple(peers), forwarding=node.name == relay.name
            )
    nodes = tuple(
        dataclasses.replace(
            node, networks=tuple(new_members[(node.name, m.network)] for m in node.networks)
        )
        for node in model.nodes
    )
    return dataclasses.replace(model, nodes=nodes)
