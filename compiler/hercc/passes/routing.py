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
from collections.abc import Collection
from dataclasses import dataclass, replace

from hercc import ast, codes, ir
from hercc.diagnostics import Collector

Weight = tuple[int, int, int]


class RoutingTie(Exception):
    """Two distinct paths with the same weight: the tie-break failed (a bug)."""


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


@dataclass
class Tree:
    """Dijkstra from one root: each node's first hop from the root, its parent, its weight."""

    first: dict[str, str]
    parent: dict[str, str]
    weight: dict[str, Weight]


def shortest_paths(graph: Graph, src: str) -> Tree:
    """Dijkstra under the strict order above; only relays are expanded."""
    best: dict[str, Weight] = {src: (0, 0, 0)}
    first: dict[str, str] = {}
    parent: dict[str, str] = {}
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
            old = best.get(v)
            if old is None or cand < old:
                best[v] = cand
                parent[v] = u
                first[v] = v if u == src else first[u]
                heapq.heappush(heap, (cand, v))
            elif cand == old and parent[v] != u:
                raise RoutingTie(f"equal-weight paths from {src} to {v}")
    del best[src]
    return Tree(first, parent, best)


class Router:
    """Next hops and costs for every pair, without all-pairs Dijkstra.

    A *clean* node has no explicit link, so every link it has is a default
    one (cost d). Between two clean nodes the path is then fixed: direct when
    they may link (cost d; any other path costs at least d + 1), and through
    the lowest-ranked relay when both are nat (cost 2d; any longer path costs
    at least 2d + 1, and among one-relay paths the rank decides). Dijkstra
    runs only from the *dirty* nodes, those with explicit links; a clean
    node's hop toward a dirty node is its parent in that node's tree, since
    the unique path is the same read from either end.
    """

    def __init__(self, graph: Graph) -> None:
        if graph.public_cost != graph.nat_cost:
            raise ValueError("the clean-path rule assumes one default link cost")
        self.graph = graph
        self.default = graph.public_cost
        ends = {name for pair in graph.links for name in pair}
        self.dirty = [name for name in graph.members if name in ends]
        self.trees = {d: shortest_paths(graph, d) for d in self.dirty}
        self.hub = (
            min(graph.relay_bit, key=lambda r: graph.relay_bit[r]) if graph.relay_bit else None
        )

    def hop(self, src: str, dst: str) -> str | None:
        """The next hop from src toward dst, None when there is no path."""
        if src in self.trees:
            return self.trees[src].first.get(dst)
        if dst in self.trees:
            return self.trees[dst].parent.get(src)
        if src in self.graph.nat and dst in self.graph.nat:
            return self.hub
        return dst

    def cost(self, src: str, dst: str) -> int | None:
        for root, other in ((src, dst), (dst, src)):
            if root in self.trees:
                weight = self.trees[root].weight.get(other)
                return None if weight is None else weight[0]
        if src in self.graph.nat and dst in self.graph.nat:
            return None if self.hub is None else 2 * self.default
        return self.default

    def path(self, src: str, dst: str) -> list[str]:
        hops = [src]
        while hops[-1] != dst:
            nxt = self.hop(hops[-1], dst)
            if nxt is None or len(hops) > len(self.graph.members):
                raise RoutingTie(f"no consistent path from {src} to {dst}: {hops}")
            hops.append(nxt)
        return hops

    def hops_from(self, src: str) -> dict[str, str]:
        """Every destination's next hop from src (the unreachable ones left out)."""
        if src in self.trees:
            return dict(self.trees[src].first)
        out: dict[str, str] = {}
        nat_src = src in self.graph.nat
        for dst in self.graph.members:
            if dst == src:
                continue
            if dst in self.trees:
                hop = self.trees[dst].parent.get(src)
            elif nat_src and dst in self.graph.nat:
                hop = self.hub
            else:
                hop = dst
            if hop is not None:
                out[dst] = hop
        return out

    def missing(self) -> list[tuple[str, str]]:
        """Pairs with no path at all (each reported once, src < dst)."""
        out = [
            (min(d, t), max(d, t))
            for d, tree in self.trees.items()
            for t in self.graph.members
            if t != d and t not in tree.first
        ]
        clean_nat = [n for n in self.graph.members if n in self.graph.nat and n not in self.trees]
        if self.hub is None and len(clean_nat) > 1:
            out.append((clean_nat[0], clean_nat[1]))
        return sorted(set(out))

    def forwarders(self) -> set[str]:
        """Relays that carry traffic between two other nodes."""
        out = {p for d, tree in self.trees.items() for p in tree.parent.values() if p != d}
        clean_nat = sum(
            1 for n in self.graph.members if n in self.graph.nat and n not in self.trees
        )
        if self.hub is not None and clean_nat > 1:
            out.add(self.hub)
        return out


@dataclass(frozen=True)
class NetworkRoutes:
    """The routing of one network, for `hercc route` and the backends."""

    network: str
    router: Router

    def path(self, src: str, dst: str) -> list[str]:
        return self.router.path(src, dst)

    def cost(self, src: str, dst: str) -> int | None:
        return self.router.cost(src, dst)

    @property
    def members(self) -> list[str]:
        return self.router.graph.members


def route(
    model: ir.IR, spec: ast.Spec, diags: Collector, *, peers_for: Collection[str] | None = None
) -> tuple[ir.IR, dict[str, NetworkRoutes]]:
    """Fill every membership's forwarding flag and MTU, and the peers of `peers_for`'s nodes.

    `peers_for` None: every node's. Peers are O(n^2) for a full mesh: `hercc
    check` asks only whether every pair has a path, which the router answers
    without them, and `build --node` needs only its nodes' peers.
    """
    routes: dict[str, NetworkRoutes] = {}
    spans = {n.name: n.span for n in spec.nodes}
    memberships: dict[tuple[str, str], ir.Membership] = {
        (node.name, m.network): m for node in model.nodes for m in node.networks
    }
    pubkeys = {n.name: n.pubkey for n in model.nodes}
    updated: dict[tuple[str, str], ir.Membership] = {}
    for net in model.networks:
        graph = Graph(model, net.name)
        router = Router(graph)
        reported: set[str] = set()
        for src, dst in router.missing():
            if src in reported or dst in reported:
                continue
            reported.add(src)
            diags.error(
                codes.NO_PATH,
                f"network {net.name}: no overlay path from node {src} to node {dst}",
                spans[src],
                "nat nodes reach others only through public relays; add a relay both can reach",
            )
        if reported:
            continue
        routes[net.name] = NetworkRoutes(net.name, router)
        forwarding = router.forwarders()
        maker = _PeerMaker(net, graph, memberships, pubkeys)
        for name in graph.members:
            member = memberships[(name, net.name)]
            wanted = peers_for is None or name in peers_for
            peers = maker.peers_for(name, router) if wanted else ()
            updated[(name, net.name)] = replace(
                member, mtu=net.mtu, forwarding=name in forwarding, peers=peers
            )
    nodes = tuple(
        replace(n, networks=tuple(updated.get((n.name, m.network), m) for m in n.networks))
        for n in model.nodes
    )
    return replace(model, nodes=nodes), routes


class _PeerMaker:
    """Builds one network's peer lists; identical peers are made once and shared.

    In a full mesh almost every peer entry is "node X, X's own subnets": a
    thousand distinct objects serve a million entries.
    """

    def __init__(
        self,
        net: ir.Network,
        graph: Graph,
        memberships: dict[tuple[str, str], ir.Membership],
        pubkeys: dict[str, str | None],
    ) -> None:
        self.net = net
        self.graph = graph
        self.memberships = memberships
        self.pubkeys = pubkeys
        own = {
            name: [p for p in (m.subnet, m.subnet6) if p is not None]
            for (name, network), m in memberships.items()
            if network == net.name
        }
        self.ranges = tuple(r for r in (net.range, net.range6) if r is not None)
        # Parse every prefix once: sorting AllowedIPs is the hot loop of a big mesh.
        self.order = {
            p: _prefix_key(p) for p in [*(x for ps in own.values() for x in ps), *self.ranges]
        }
        self.own = {name: tuple(sorted(ps, key=self.order.__getitem__)) for name, ps in own.items()}
        self.cache: dict[tuple[str, tuple[str, ...], bool], ir.Peer] = {}
        self.keepalive = math.ceil(net.keepalive_ms / 1000) if net.keepalive_ms else None
        self.nat_peers: tuple[ir.Peer, ...] | None = None
        self.direct: tuple[ir.Peer, ...] | None = None
        self.index = {name: i for i, name in enumerate(graph.members)}

    def _peer(self, hop: str, allowed: tuple[str, ...], nat: bool) -> ir.Peer:
        key = (hop, allowed, nat)
        peer = self.cache.get(key)
        if peer is None:
            peer = self.cache[key] = ir.Peer(
                node=hop,
                pubkey=self.pubkeys[hop],
                endpoint=self.memberships[(hop, self.net.name)].endpoint,
                allowed_ips=allowed,
                keepalive_s=self.keepalive if nat else None,
                psk=self.net.psk,
            )
        return peer

    def peers_for(self, name: str, router: Router) -> tuple[ir.Peer, ...]:
        """A node's peers; without explicit links, from shared per-class lists.

        With no dirty node, every nat node has the same peers (each public
        node direct with its own subnets, the hub relay with the ranges), and
        a public node has every other member direct, the lowest-named one
        holding the ranges (all counts tie at one). Both equal what
        peers_of(hops_from(...)) gives, in O(1) and O(n) instead of O(n) and
        O(n) with hashing; a 10,000-node network needs that. A public node's
        list is sliced from one list of every member direct, in C: 1,000
        public nodes of 10,000 members make ten million entries.
        """
        if router.dirty:
            return self.peers_of(name, router.hops_from(name))
        if name in self.graph.nat:
            if self.nat_peers is None:
                self.nat_peers = self.peers_of(name, router.hops_from(name))
            return self.nat_peers
        members = self.graph.members
        if len(members) < 2:
            return ()
        if self.direct is None:
            self.direct = tuple(self._peer(t, self.own[t], False) for t in members)
        i = self.index[name]
        if i == 0:
            return (self._peer(members[1], self.ranges, False), *self.direct[2:])
        return (
            self._peer(members[0], self.ranges, False),
            *self.direct[1:i],
            *self.direct[i + 1 :],
        )

    def peers_of(self, name: str, hops: dict[str, str]) -> tuple[ir.Peer, ...]:
        if not hops:
            return ()
        counts = Counter(hops.values())
        usual = min(counts, key=lambda hop: (-counts[hop], hop))
        behind: dict[str, list[str]] = {}
        for dst, hop in hops.items():
            if hop != usual:
                behind.setdefault(hop, []).append(dst)
        nat = name in self.graph.nat
        peers = []
        for hop in sorted(counts):
            if hop == usual:
                allowed = self.ranges
            else:
                dests = behind[hop]
                if len(dests) == 1:
                    allowed = self.own[dests[0]]
                else:
                    prefixes = [p for d in dests for p in self.own[d]]
                    allowed = tuple(sorted(prefixes, key=self.order.__getitem__))
            peers.append(self._peer(hop, allowed, nat))
        return tuple(peers)


def _prefix_key(prefix: str) -> tuple[int, int, int]:
    """AllowedIPs order: IPv4 first, then by address, then shorter prefixes first."""
    net = ipaddress.ip_network(prefix)
    return (net.version, int(net.network_address), net.prefixlen)
