"""Pass 3: addresses. Node subnets from each network's range, each node's own
overlay address, workload addresses; IPv4 and IPv6.

Stability rules, in order: a pinned value always wins; a value recorded in the
lock is kept while it is still valid and free; anything new takes the lowest
free slot, new names taken in sorted order. So adding, removing or reordering
nodes and workloads never moves anyone else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hercc import ast, codes
from hercc.diagnostics import Collector
from hercc.lockfile import Lock
from hercc.passes.resolve import Names
from hercc.source import Span
from hercc.values import IPNetwork


@dataclass(frozen=True)
class NodeAddrs:
    subnet: IPNetwork | None
    subnet6: IPNetwork | None


@dataclass(frozen=True)
class Allocation:
    """(network, node) -> subnets; workload -> (address, address6)."""

    subnets: dict[tuple[str, str], NodeAddrs]
    workloads: dict[str, tuple[str | None, str | None]]
    lock: Lock


class _Slots:
    """Equal-sized subnets of a range, numbered; which are taken."""

    def __init__(self, rng: IPNetwork, prefix: int) -> None:
        self.base = int(rng.network_address)
        self.shift = rng.max_prefixlen - prefix
        self.count = 1 << (prefix - rng.prefixlen)
        self.prefix = prefix
        self.version = rng.version
        self.taken: set[int] = set()
        # Pinned subnets may cover millions of slots (a /32 pinned in a /16 of
        # /64s): those are kept as (first, last) ranges, never enumerated.
        self.blocks: list[tuple[int, int]] = []
        self.cursor = 0

    def network(self, index: int) -> IPNetwork:
        return ipaddress.ip_network((self.base + (index << self.shift), self.prefix))

    def index_of(self, net: IPNetwork) -> int | None:
        if net.version != self.version or net.prefixlen != self.prefix:
            return None
        offset = int(net.network_address) - self.base
        index = offset >> self.shift
        return index if offset >= 0 and index < self.count else None

    def take_overlapping(self, net: IPNetwork) -> None:
        first = (int(net.network_address) - self.base) >> self.shift
        last = (int(net.broadcast_address) - self.base) >> self.shift
        first, last = max(first, 0), min(last, self.count - 1)
        if first == last:
            self.taken.add(first)
        elif first < last:
            self.blocks.append((first, last))

    def is_taken(self, index: int) -> bool:
        return index in self.taken or any(a <= index <= b for a, b in self.blocks)

    def _block_end(self, index: int) -> int | None:
        ends = [b for a, b in self.blocks if a <= index <= b]
        return max(ends) if ends else None

    def next_free(self) -> int | None:
        while self.cursor < self.count:
            end = self._block_end(self.cursor)
            if end is not None:
                self.cursor = end + 1
            elif self.cursor in self.taken:
                self.cursor += 1
            else:
                break
        if self.cursor >= self.count:
            return None
        self.taken.add(self.cursor)
        return self.cursor


def allocate(spec: ast.Spec, names: Names, old: Lock, diags: Collector) -> Allocation:
    lock = Lock()
    subnets: dict[tuple[str, str], NodeAddrs] = {}
    pinned = _pinned_subnets(spec, names, diags)
    for net in sorted(spec.networks, key=lambda n: n.name):
        members = sorted((n for n in spec.nodes if net.name in n.networks), key=lambda n: n.name)
        v4 = _allocate_family(
            net, net.range4, net.subnet_prefix, "subnet", members, pinned, old, lock, diags
        )
        v6 = _allocate_family(
            net, net.range6, ast.SUBNET6_PREFIX, "subnet6", members, pinned, old, lock, diags
        )
        for node in members:
            subnets[(net.name, node.name)] = NodeAddrs(v4.get(node.name), v6.get(node.name))
    workloads = _allocate_workloads(spec, names, subnets, old, lock, diags)
    return Allocation(subnets, workloads, lock)


def _pinned_subnets(
    spec: ast.Spec, names: Names, diags: Collector
) -> dict[tuple[str, str, int], tuple[IPNetwork, Span]]:
    """(network, node, ip version) -> pinned subnet; each must lie in one of the node's networks."""
    out: dict[tuple[str, str, int], tuple[IPNetwork, Span]] = {}
    for node in spec.nodes:
        for i, sub in enumerate(node.pinned_subnets):
            span = node.spans[f"subnet:{i}"]
            home = None
            for net_name in node.networks:
                net = names.networks.get(net_name)
                rng = None if net is None else (net.range4 if sub.version == 4 else net.range6)
                if rng is not None and sub.subnet_of(rng):  # type: ignore[arg-type]
                    home = net_name
            if home is None:
                diags.error(
                    codes.SUBNET_OUTSIDE,
                    f"node {node.name}: pinned subnet {sub} lies outside the range of its network"
                    + ("s" if len(node.networks) > 1 else ""),
                    span,
                )
                continue
            key = (home, node.name, sub.version)
            if key in out:
                diags.error(
                    codes.REPEATED,
                    f"node {node.name}: a second IPv{sub.version} subnet in {home}",
                    span,
                )
                continue
            out[key] = (sub, span)
    return out


def _allocate_family(
    net: ast.NetworkDecl,
    rng: IPNetwork | None,
    prefix: int,
    field_name: str,
    members: list[ast.NodeDecl],
    pinned: dict[tuple[str, str, int], tuple[IPNetwork, Span]],
    old: Lock,
    lock: Lock,
    diags: Collector,
) -> dict[str, IPNetwork]:
    if rng is None or prefix < rng.prefixlen or prefix > rng.max_prefixlen:
        return {}
    version = rng.version
    slots = _Slots(rng, prefix)
    out: dict[str, IPNetwork] = {}
    placed: list[tuple[IPNetwork, str, Span]] = []
    for node in members:
        pin = pinned.get((net.name, node.name, version))
        if pin is None:
            continue
        sub, span = pin
        if sub.prefixlen > prefix or (version == 4 and sub.prefixlen > 30):
            diags.error(
                codes.SUBNET_SIZE,
                f"node {node.name}: pinned subnet {sub} is smaller than "
                f"the network's /{prefix} subnets",
                span,
            )
        for other, other_node, _ in placed:
            if sub.overlaps(other):
                diags.error(
                    codes.SUBNET_OVERLAP,
                    f"node {node.name}: pinned subnet {sub} overlaps {other} of node {other_node}",
                    span,
                )
        placed.append((sub, node.name, span))
        slots.take_overlapping(sub)
        out[node.name] = sub
    # Recorded subnets first, so that a new node never takes one an old node holds.
    rest = [n for n in members if n.name not in out]
    fresh: list[ast.NodeDecl] = []
    for node in rest:
        recorded = old.get(net.name, "nodes", node.name, field_name)
        index = None
        if recorded is not None:
            try:
                index = slots.index_of(ipaddress.ip_network(recorded))
            except ValueError:
                index = None
        if index is None or slots.is_taken(index):
            fresh.append(node)
            continue
        slots.taken.add(index)
        out[node.name] = slots.network(index)
    for node in fresh:
        index = slots.next_free()
        if index is None:
            diags.error(
                codes.SUBNET_EXHAUSTED,
                f"network {net.name}: no free /{prefix} left in {rng} for node {node.name}",
                node.spans[f"network:{net.name}"],
                "widen the network's range6: every node takes one /64"
                if version == 6
                else "widen the network's range or use smaller `subnets`",
            )
            continue
        out[node.name] = slots.network(index)
    for node in rest:
        if node.name in out:
            lock.put(net.name, "nodes", node.name, field_name, str(out[node.name]))
    return out


def _allocate_workloads(
    spec: ast.Spec,
    names: Names,
    subnets: dict[tuple[str, str], NodeAddrs],
    old: Lock,
    lock: Lock,
    diags: Collector,
) -> dict[str, tuple[str | None, str | None]]:
    by_subnet: dict[tuple[str, str], list[ast.WorkloadDecl]] = {}
    for w in spec.workloads:
        node = names.nodes.get(w.node)
        if node is None:
            continue
        network = w.network or (node.networks[0] if len(node.networks) == 1 else None)
        if network is None or network not in node.networks or network not in names.networks:
            continue
        by_subnet.setdefault((network, node.name), []).append(w)
    result: dict[str, tuple[str | None, str | None]] = {}
    for (network, node_name), group in sorted(by_subnet.items()):
        addrs = subnets.get((network, node_name), NodeAddrs(None, None))
        group.sort(key=lambda w: w.name)
        v4 = _allocate_hosts(network, node_name, addrs.subnet, group, "address", old, lock, diags)
        v6 = _allocate_hosts(network, node_name, addrs.subnet6, group, "address6", old, lock, diags)
        for w in group:
            result[w.name] = (v4.get(w.name), v6.get(w.name))
    return result


def _allocate_hosts(
    network: str,
    node_name: str,
    subnet: IPNetwork | None,
    group: list[ast.WorkloadDecl],
    field_name: str,
    old: Lock,
    lock: Lock,
    diags: Collector,
) -> dict[str, str]:
    """Host .1 is the node's own address; workloads take .2 upwards."""
    out: dict[str, str] = {}
    pins = [(w, getattr(w, field_name)) for w in group if getattr(w, field_name) is not None]
    if subnet is None:
        for w, addr in pins:
            diags.error(
                codes.ADDRESS_OUTSIDE,
                f"workload {w.name}: network {network} has no "
                f"IPv{addr.version} range for address {addr}",
                w.spans[field_name],
            )
        return out
    base = int(subnet.network_address)
    last = int(subnet.broadcast_address) - (1 if subnet.version == 4 else 0)
    used: dict[int, str] = {base + 1: f"node {node_name}"}
    for w, addr in pins:
        value = int(addr)
        span = w.spans[field_name]
        if addr.version != subnet.version or not base + 1 <= value <= last:
            diags.error(
                codes.ADDRESS_OUTSIDE,
                f"workload {w.name}: address {addr} is outside node {node_name}'s subnet {subnet}",
                span,
                f"usable: {ipaddress.ip_address(base + 2)} .. {ipaddress.ip_address(last)}",
            )
            continue
        if value in used:
            diags.error(
                codes.ADDRESS_REUSED,
                f"workload {w.name}: address {addr} is already used by {used[value]}",
                span,
            )
            continue
        used[value] = f"workload {w.name}"
        out[w.name] = str(addr)
    rest = [w for w in group if w.name not in out and getattr(w, field_name) is None]
    fresh = []
    for w in rest:
        recorded = old.get(network, "workloads", w.name, field_name)
        kept = _host_in(recorded, subnet)
        if kept is None or kept in used or not base + 2 <= kept <= last:
            fresh.append(w)
            continue
        used[kept] = f"workload {w.name}"
        out[w.name] = str(ipaddress.ip_address(kept))
    cursor = base + 2
    for w in fresh:
        while cursor <= last and cursor in used:
            cursor += 1
        if cursor > last:
            diags.error(
                codes.ADDRESSES_EXHAUSTED,
                f"workload {w.name}: node {node_name}'s subnet {subnet} has no free address",
                w.span,
                "give the network larger `subnets`",
            )
            continue
        used[cursor] = f"workload {w.name}"
        out[w.name] = str(ipaddress.ip_address(cursor))
    for w in rest:
        if w.name in out:
            lock.put(network, "workloads", w.name, field_name, out[w.name])
    return out


def _host_in(recorded: str | None, subnet: IPNetwork) -> int | None:
    if recorded is None:
        return None
    try:
        addr = ipaddress.ip_address(recorded)
    except ValueError:
        return None
    return int(addr) if addr in subnet else None
