"""Pass 6: routing. Who peers with whom, and each peer's AllowedIPs.

Only public nodes with `relay on` carry other nodes' traffic; nat nodes and
`relay off` nodes are path ends only. Every pair of members gets one cheapest
path over the underlay graph (passes/underlay.py).

WireGuard forwards by longest-prefix match on AllowedIPs, hop by hop, and
drops a decrypted packet whose inner source is not behind the peer it came
from. So every node must agree on every path: the way back is the exact
reverse of the way there, and a relay's own path to a destination is the
rest of the path it is on. Both hold when shortest paths are *unique*: then a
sub-path of a shortest path is the shortest path between its ends, and the
graph is undirected. Ties are therefore broken by a strict total order on
path weights, compared as tuples:

  1. the cost (sum of link costs);
  2. the sum of 2**rank over the relays passed through, rank by name: among
     equal costs, prefer the lowest-named relays. Every nat node then uses
     the same relay to reach the others where costs tie (the common case),
     which is what lets AllowedIPs be summarised;
  3. the sum of a 64-bit hash of each link: only paths through the same
     relays in a different order can still tie here, and a tie that survives
     this is reported as a bug rather than resolved arbitrarily.

AllowedIPs are summarised: a node puts the network's whole range behind its
usual next hop, and lists each destination reached through another peer
behind that peer as its subnet (more specific, so it wins).
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import math
from collections import Counter
from dataclasses import dataclass, replace

from hercc import ast, codes, ir
from hercc.diagnostics import Collector

Weight = tuple[int, int, int]


class RoutingTie(Exception):
    """Two distinct paths with the same weight: the tie-break failed (a bug)."""


@dataclass(frozen=True)
class NetworkRoutes:
    """First hop and cost from every member to every other, in one network."""

    network: str
    next_hop: dict[str, dict[str, str]]
    cost: dict[str, dict[str, int]]

    def path(self, src: str, dst: str) -> list[str]:
        hops = [src]
        while hops[-1] != dst:
            hops.append(self.next_hop[hops[-1]][dst])
            if len(hops) > len(self.next_hop) + 1:
                raise RoutingTie(f"routing loop from {src} to {dst}: {hops}")
        return hops


class Graph:
    """The underlay of one network: explicit links over the default rules."""

    def __init__(self, model: ir.IR, network: str) -> None:
        nodes = {n.name: n for n in model.nodes}
        self.network = network
        self.members = sorted(
            n.name for n in model.nodes if any(m.network == network for m in n.networks)
        )
        self.nat = {name for name in self.members if nodes[name].kind == "nat"}
        relays = sorted(name for name in self.members if nodes[name].relay)
        self.relay_bit = {name: 1 << rank for rank, name in enumerate(relays)}
        member_set = set(self.members)
        self.links = {
            (link.a, link.b): link.cost
            for link in model.underlay.links
            if link.a in member_set and link.b in member_set
        }
        self.public_cost = model.underlay.public_public_cost
        self.nat_cost = model.underlay.nat_public_cost

    def cost(self, u: str, v: str) -> int | None:
        key = (u, v) if u < v else (v, u)
        if key in self.links:
            return self.links[key]
        if u in self.nat:
            return None if v in self.nat else self.nat_cost
        return self.nat_cost if v in self.nat else self.public_cost


def _edge_hash(u: str, v: str) -> int:
    a, b = (u, v) if u < v else (v, u)
    return int.from_bytes(hashlib.blake2b(f"{a}\0{b}".encode(), digest_size=8).digest(), "big")


def shortest_paths(graph: Graph, src: str) -> tuple[dict[str, str], dict[str, Weight]]:
    """Dijkstra under the strict order above. Returns first hops and weights from src."""
    best: dict[str, Weight] = {src: (0, 0, 0)}
    first: dict[str, str] = {}
    done: set[str] = set()
    heap: list[tuple[Weight, str]] = [((0, 0, 0), src)]
    while heap:
        weight, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        if u != src and u not in graph.relay_bit:
            continue  # a path end, never a hop
        via = graph.relay_bit.get(u, 0) if u != src else 0
        for v in graph.members:
            if v in done or v == u:
                continue
            c = graph.cost(u, v)
            if c is None:
                continue
            cand = (weight[0] + c, weight[1] + via, weight[2] + _edge_hash(u, v))
            hop = v if u == src else first[u]
            old = best.get(v)
            if old is None or cand < old:
                best[v] = cand
                first[v] = hop
                heapq.heappush(heap, (cand, v))
            elif cand == old and first[v] != hop:
                raise RoutingTie(f"equal-weight paths from {src} to {v}")
    return first, best


def route_network(graph: Graph) -> tuple[NetworkRoutes, list[tuple[str, str]]]:
    """All first hops; also the pairs with no path at all."""
    next_hop: dict[str, dict[str, str]] = {}
    cost: dict[str, dict[str, int]] = {}
    missing: list[tuple[str, str]] = []
    for src in graph.members:
        first, weights = shortest_paths(graph, src)
        next_hop[src] = first
        cost[src] = {dst: w[0] for dst, w in weights.items() if dst != src}
        missing.extend((src, dst) for dst in graph.members if dst != src and dst not in first)
    return NetworkRoutes(graph.network, next_hop, cost), missing


def route(model: ir.IR, spec: ast.Spec, diags: Collector) -> tuple[ir.IR, dict[str, NetworkRoutes]]:
    """Fill every membership's peers, forwarding flag and MTU."""
    routes: dict[str, NetworkRoutes] = {}
    spans = {n.name: n.span for n in spec.nodes}
    memberships: dict[tuple[str, str], ir.Membership] = {
        (node.name, m.network): m for node in model.nodes for m in node.networks
    }
    pubkeys = {n.name: n.pubkey for n in model.nodes}
    updated: dict[tuple[str, str], ir.Membership] = {}
    for net in model.networks:
        graph = Graph(model, net.name)
        table, missing = route_network(graph)
        reported: set[str] = set()
        for src, dst in missing:
            if src in reported or dst in reported:
                continue
            reported.add(src)
            diags.error(
                codes.NO_PATH,
                f"network {net.name}: no overlay path from node {src} to node {dst}",
                spans[src],
                "nat nodes reach others only through public relays; add a relay both can reach",
            )
        routes[net.name] = table
        forwarding = {
            hop for src, hops in table.next_hop.items() for dst, hop in hops.items() if hop != dst
        }
        for name in graph.members:
            member = memberships[(name, net.name)]
            peers = _peers(name, net, graph, table, memberships, pubkeys)
            updated[(name, net.name)] = ir.Membership(
                network=member.network,
                subnet=member.subnet,
                subnet6=member.subnet6,
                address=member.address,
                address6=member.address6,
                listen_port=member.listen_port,
                endpoint=member.endpoint,
                mtu=net.mtu,
                forwarding=name in forwarding,
                peers=peers,
            )
    nodes = tuple(
        ir.Node(
            n.name,
            n.kind,
            n.relay,
            n.pubkey,
            tuple(updated[(n.name, m.network)] for m in n.networks),
        )
        for n in model.nodes
    )
    return replace(model, nodes=nodes), routes


def _peers(
    name: str,
    net: ir.Network,
    graph: Graph,
    table: NetworkRoutes,
    memberships: dict[tuple[str, str], ir.Membership],
    pubkeys: dict[str, str | None],
) -> tuple[ir.Peer, ...]:
    hops = table.next_hop[name]
    if not hops:
        return ()
    counts = Counter(hops.values())
    usual = min(counts, key=lambda hop: (-counts[hop], hop))
    behind: dict[str, list[str]] = {hop: [] for hop in counts}
    for dst, hop in hops.items():
        if hop == usual:
            continue
        m = memberships[(dst, net.name)]
        behind[hop].extend(p for p in (m.subnet, m.subnet6) if p is not None)
    behind[usual] = [r for r in (net.range, net.range6) if r is not None]
    keepalive = (
        math.ceil(net.keepalive_ms / 1000) if name in graph.nat and net.keepalive_ms else None
    )
    peers = []
    for hop in sorted(behind):
        peer_member = memberships[(hop, net.name)]
        peers.append(
            ir.Peer(
                node=hop,
                pubkey=pubkeys[hop],
                endpoint=peer_member.endpoint,
                allowed_ips=tuple(_sorted_prefixes(behind[hop])),
                keepalive_s=keepalive,
                psk=net.psk,
            )
        )
    return tuple(peers)


def _sorted_prefixes(prefixes: list[str]) -> list[str]:
    nets = [ipaddress.ip_network(p) for p in prefixes]
    return [str(n) for n in sorted(nets, key=lambda n: (n.version, n.network_address, n.prefixlen))]
