"""Pass: gateway tunnels and DNS serials, after lowering (needs workload addresses).

Every gateway takes a /24 of TUNNEL_POOL (and a /64 of TUNNEL_POOL6 when it
has address6); its own end of every tunnel is the range's first address, and
each workload exposed through it takes the next free one (IPv4 when the
workload has an IPv4 address, else IPv6), on the tunnel of the workload's
node. The node forwards that address to the workload's own (DNAT), so two
workloads of one node may expose the same port. The node's end of a tunnel
sits in the namespace of its workloads' network, and a gateway tells its
peers apart by key (one per node): all the workloads a node exposes through
one gateway must be in one network (E235).
Values are kept in SPEC.lock like the networks' (same stability rules: a
recorded value is kept while valid and free; anything new takes the lowest
free slot, new names in sorted order). The pools lie outside every network
range (checked by passes/check.py, E231).

A zone's SOA serial is kept in SPEC.lock with a digest of the zone's content:
the same content keeps its serial, new content takes the next one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from collections.abc import Callable

from hercc import ast, codes, ir
from hercc.diagnostics import Collector
from hercc.lockfile import Lock
from hercc.resources.naming import Naming
from hercc.source import Span

TUNNEL_POOL = ipaddress.ip_network("100.127.0.0/16")
TUNNEL_PREFIX = 24
TUNNEL_POOL6 = ipaddress.ip_network("fd68:6572:6375::/48")
TUNNEL_PREFIX6 = 64
GATEWAY_HOST = 1  # the gateway's own address in its range; workloads take 2 upwards
KEEPALIVE_S = 25  # a node's tunnel to a gateway: keeps its NAT mapping open
# The public port of each host-routed protocol (tcp exposes name their own port).
PROTOCOL_PORTS = {"https": 443, "http": 80}

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def gateway_tunnels(model: ir.IR, spec: ast.Spec, old: Lock, lock: Lock, diags: Collector) -> ir.IR:
    """The IR with every gateway's tunnel ranges, addresses and tunnels, and DNS serials."""
    wanted = _wanted(model)
    spans = {g.name: g.span for g in spec.gateways}
    ranges4 = _ranges(
        model, old, lock, "subnet", TUNNEL_POOL, TUNNEL_PREFIX, lambda g: True, spans, diags
    )
    ranges6 = _ranges(
        model, old, lock, "subnet6", TUNNEL_POOL6, TUNNEL_PREFIX6, _has_address6, spans, diags
    )
    services = {s.name: s for s in spec.services}
    has_v4 = {w.name for w in model.workloads if w.address is not None}
    gateways = []
    for gw in model.gateways:
        r4, r6 = ranges4.get(gw.name), ranges6.get(gw.name)
        if r4 is None:
            gateways.append(gw)
            continue
        by_node = wanted.get(gw.name, {})
        exposed = sorted({w for targets in by_node.values() for _, w, _ in targets})
        where = spans[gw.name]
        a4 = _hosts(gw.name, exposed, r4, "address", old, lock, where, diags)
        # IPv6 tunnel addresses only for the workloads the gateway reaches over IPv6.
        v6_only = [w for w in exposed if w not in has_v4]
        a6 = {} if r6 is None else _hosts(gw.name, v6_only, r6, "address6", old, lock, where, diags)
        tunnels = []
        for node in sorted(by_node):
            forwards = [_forward(target, a4, a6, model) for target in by_node[node]]
            _check_forwards(gw.name, forwards, by_node[node], services, diags)
            tunnels.append(
                ir.Tunnel(
                    node=node,
                    network=_network(gw.name, node, by_node[node], model, services, diags),
                    ifname=Naming().gw_ifname(gw.name),
                    pubkey=model.node(node).pubkey,
                    forwards=tuple(sorted({f for f in forwards if f}, key=_by_target)),
                )
            )
        gateways.append(
            dataclasses.replace(
                gw,
                tunnel_range=str(r4),
                tunnel_range6=None if r6 is None else str(r6),
                tunnel_address=str(r4.network_address + GATEWAY_HOST),
                tunnel_address6=None if r6 is None else str(r6.network_address + GATEWAY_HOST),
                tunnels=tuple(tunnels),
            )
        )
    zones = tuple(_with_serial(z, old, lock) for z in model.dns)
    return dataclasses.replace(model, gateways=tuple(gateways), dns=zones)


# gateway -> node -> [(service, workload, port)], in the order of the IR's sorted services
Wanted = dict[str, dict[str, list[tuple[str, str, int]]]]


def _wanted(model: ir.IR) -> Wanted:
    """Which nodes each gateway tunnels to, and which (workload, port) each carries."""
    node_of = {w.name: w.node for w in model.workloads}
    out: Wanted = {}
    for svc in model.services:
        for gw in sorted({g for e in svc.exposes for g in e.via}):
            for w in svc.workloads:
                if w in node_of:
                    entry = (svc.name, w, svc.port)
                    targets = out.setdefault(gw, {}).setdefault(node_of[w], [])
                    if entry not in targets:
                        targets.append(entry)
    return out


def _slice_of(net: Net, pool: Net, prefix: int) -> bool:
    """`net` is one of the pool's /prefix slices (checked without listing them: 65,536 /64s)."""
    if net.version != pool.version or net.prefixlen != prefix:
        return False
    return int(net.network_address) >> (net.max_prefixlen - pool.prefixlen) == int(
        pool.network_address
    ) >> (pool.max_prefixlen - pool.prefixlen)


def _ranges(
    model: ir.IR,
    old: Lock,
    lock: Lock,
    field_name: str,
    pool: Net,
    prefix: int,
    has: Callable[[ir.Gateway], bool],
    spans: dict[str, Span],
    diags: Collector,
) -> dict[str, Net]:
    """gateway -> its slice of the pool: recorded ones kept, new ones the lowest free."""
    out: dict[str, Net] = {}
    taken: set[Net] = set()
    fresh = []
    for gw in sorted((g for g in model.gateways if has(g)), key=lambda g: g.name):
        recorded = old.get_gateway(gw.name, "gateway", gw.name, field_name)
        net = _parse_net(recorded)
        if net is None or not _slice_of(net, pool, prefix) or net in taken:
            fresh.append(gw)
            continue
        taken.add(net)
        out[gw.name] = net
    free = (s for s in pool.subnets(new_prefix=prefix) if s not in taken)
    for gw in fresh:
        found = next(free, None)
        if found is None:
            diags.error(
                codes.SUBNET_EXHAUSTED,
                f"gateway {gw.name}: no free /{prefix} left in the tunnel pool {pool}",
                spans[gw.name],
            )
            continue
        out[gw.name] = found
    for name, net in out.items():
        lock.put_gateway(name, "gateway", name, field_name, str(net))
    return out


def _hosts(
    gateway: str, workloads: list[str], rng: Net, field_name: str, old: Lock, lock: Lock,
    where: Span, diags: Collector,
) -> dict[str, str]:  # fmt: skip
    """workload -> its tunnel address in the gateway's range (host 1 is the gateway's)."""
    base = int(rng.network_address)
    last = int(rng.broadcast_address) - (1 if rng.version == 4 else 0)
    used = {base + GATEWAY_HOST}
    out: dict[str, int] = {}
    fresh = []
    for name in workloads:
        recorded = _parse_addr(old.get_gateway(gateway, "workloads", name, field_name))
        if recorded is None or recorded in used or not base + 2 <= recorded <= last:
            fresh.append(name)
            continue
        used.add(recorded)
        out[name] = recorded
    cursor = base + 2
    for name in fresh:
        while cursor in used:
            cursor += 1
        if cursor > last:
            diags.error(
                codes.ADDRESSES_EXHAUSTED,
                f"gateway {gateway}: its tunnel range {rng} has no free address "
                f"for workload {name}",
                where,
            )
            continue
        used.add(cursor)
        out[name] = cursor
    result = {n: str(ipaddress.ip_address(a)) for n, a in out.items()}
    for name, addr in result.items():
        lock.put_gateway(gateway, "workloads", name, field_name, addr)
    return result


def _forward(
    target: tuple[str, str, int], a4: dict[str, str], a6: dict[str, str], model: ir.IR
) -> ir.Forward | None:
    """The workload's Forward: IPv4 when it has an IPv4 address, else IPv6 (None: neither fits)."""
    _service, name, port = target
    w = next(w for w in model.workloads if w.name == name)
    if w.address is not None and name in a4:
        return ir.Forward(name, w.address, a4[name], port)
    if w.address6 is not None and name in a6:
        return ir.Forward(name, w.address6, a6[name], port)
    return None


def _check_forwards(
    gateway: str,
    forwards: list[ir.Forward | None],
    targets: list[tuple[str, str, int]],
    services: dict[str, ast.ServiceDecl],
    diags: Collector,
) -> None:
    """A forward needs an address family both the workload and the tunnel have."""
    for fwd, (service, workload, _port) in zip(forwards, targets, strict=True):
        if fwd is not None:
            continue
        svc = services[service]
        diags.error(
            codes.TUNNEL_FAMILY,
            f"service {service}: workload {workload} has no IPv4 address, and gateway "
            f"{gateway} has no address6 for an IPv6 tunnel",
            svc.spans.get(f"workload:{workload}", svc.span),
            f"give gateway {gateway} an address6, or the workload's network a range",
        )


def _network(
    gateway: str,
    node: str,
    targets: list[tuple[str, str, int]],
    model: ir.IR,
    services: dict[str, ast.ServiceDecl],
    diags: Collector,
) -> str:
    """The one network of the workloads `node` exposes through `gateway` (E235 for another)."""
    network_of = {w.name: w.network for w in model.workloads}
    _service, first, _port = targets[0]
    network = network_of[first]
    for service, workload, _port in targets[1:]:
        if network_of[workload] == network:
            continue
        svc = services[service]
        diags.error(
            codes.TUNNEL_NETWORKS,
            f"node {node} exposes workload {first} (network {network}) and workload "
            f"{workload} (network {network_of[workload]}) through gateway {gateway}: a "
            "node's one tunnel to a gateway serves one network",
            svc.spans.get(f"workload:{workload}", svc.span),
            "expose them through different gateways, or run them on different nodes",
        )
        break
    return network


def _with_serial(zone: ir.DnsZone, old: Lock, lock: Lock) -> ir.DnsZone:
    content = json.dumps(
        [zone.zone, zone.ttl, zone.nameservers, [dataclasses.astuple(r) for r in zone.records]]
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    recorded = old.dns.get(zone.zone, {})
    serial = _parse_int(recorded.get("serial"))
    if serial is None:
        serial = 1
    elif recorded.get("digest") != digest:
        serial = serial % 0xFFFFFFFF + 1  # RFC 1982: 32-bit serials that wrap past 0
    lock.dns[zone.zone] = {"digest": digest, "serial": str(serial)}
    return dataclasses.replace(zone, serial=serial)


def _parse_net(text: str | None) -> Net | None:
    try:
        return None if text is None else ipaddress.ip_network(text)
    except ValueError:
        return None


def _parse_addr(text: str | None) -> int | None:
    try:
        return None if text is None else int(ipaddress.ip_address(text))
    except ValueError:
        return None


def _parse_int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and 0 < int(text) < 2**32 else None


def _has_address6(gw: ir.Gateway) -> bool:
    return gw.address6 is not None


def _by_target(fwd: ir.Forward) -> tuple[str, int]:
    return (fwd.workload, fwd.port)
