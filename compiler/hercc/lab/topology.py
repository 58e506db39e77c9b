"""The lab's topology: every namespace, interface and address, computed from the IR.

Pure: nothing here touches the system, so a topology can be checked without root.

Names carry the lab's prefix (`h` + 4 hex digits by default; a named lab's is
derived from its name, prefix_for_lab), so that labs and test runs never clash:

  <p>-u               the underlay: a bridge `br0` that every public node and
                      every NAT router plugs into (ports p0, p1, ...)
  <p>-n-<node>        a node's underlay namespace; its uplink is `ul`. The
                      UDP sockets of its WireGuard interfaces live here.
  <p>-r-<node>        a nat node's NAT router: `lan` to the node, `wan` to the
                      bridge, masquerade on `wan`
  <p>-x-<node>-<net>  the node's namespace for one network (there is no VRF
                      here: one namespace per network keeps networks apart);
                      it holds the WireGuard interface and the workloads' veths
  <p>-w-<workload>    a workload; its interface is `eth0`, the other end of its
                      veth is `hv-<workload>` in the node's network namespace

Veths are created straight into their namespaces, so their names only need
to be unique inside one namespace. A WireGuard interface is named <p>w<i> and
is unique on the machine, because wireguard-go's control socket
/var/run/wireguard/<name>.sock is shared by every namespace. `wg_names`
keeps the names a running lab already gave (new members take free indexes).

The harness builds the underlay (the first three); the rest, a node's
overlay, is created by `hercc apply`'s code (hercc.lab.nodes). These names
are the ones a Naming (hercc.resources.naming) gives a node (see
hercc.lab.naming.LabNaming: per node, netns prefix `<p>-x-<node>-`, workload
netns prefix `<p>-w-`, and the WireGuard names above).

Underlay addressing: a public node has its endpoint address as a /32 and an
on-link default route, so public endpoints in different /24s still share the
one L2 segment. nat node number k gets 100.64.0.0/10 block k (a /30: router
.1, node .2) and its router gets 198.18.0.0/15 address k+1 on the bridge.
A running lab keeps every node's bridge port and NAT block (`running`) while
nodes come and go; a new node takes the lowest free ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from hercc import ir
from hercc.diagnostics import LabError
from hercc.keys import GATEWAY_PREFIX
from hercc.lab.collectors import Collector, collector_namespaces, collectors_of
from hercc.lab.public import GatewayHost, Internet, public_of
from hercc.resources.naming import IFNAME_MAX, Naming

NAT_INSIDE = ipaddress.IPv4Network("100.64.0.0/10")
NAT_OUTSIDE = ipaddress.IPv4Network("198.18.0.0/15")
PREFIX_MAX = IFNAME_MAX - 4  # leaves 4 characters for `w<index>` (1000 interfaces)
_PREFIX = re.compile(rf"[a-z][a-z0-9]{{0,{PREFIX_MAX - 1}}}")
_SHORT_NAME = re.compile(r"[a-z0-9]{1,6}")


def new_prefix() -> str:
    return "h" + secrets.token_hex(2)


def prefix_for_lab(name: str) -> str:
    """The name prefix of a named, long-lived lab (hercc lab up --name NAME).

    `h` + 4 hex digits of the name's hash + the name itself when it is at most
    6 of a-z0-9 (`lab` -> `h8d27lab`), else `h` + 6 hex digits. At most
    PREFIX_MAX characters, so `<prefix>w<index>` fits IFNAME_MAX.
    """
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    if _SHORT_NAME.fullmatch(name):
        return "h" + digest[:4] + name
    return "h" + digest[:6]


@dataclass(frozen=True)
class Veth:
    ns_a: str
    if_a: str
    ns_b: str
    if_b: str


@dataclass(frozen=True)
class Host:
    """A node on the underlay."""

    node: str
    kind: str  # public | nat
    ns: str
    address: str  # on `ul`, with prefix length
    gateway: str | None  # None: on-link default route out of `ul`
    public_ip: str  # the address the other nodes see: its endpoint, or its router's
    port: str  # its (public) or its NAT router's (nat) port on the underlay bridge
    router_ns: str | None = None
    router_inside: str | None = None  # on the router's `lan`, with prefix length
    router_outside: str | None = None  # on the router's `wan`, with prefix length


@dataclass(frozen=True)
class Member:
    """A node's namespace for one network."""

    node: str
    network: str
    ns: str
    wg_if: str
    listen_port: int
    addresses: tuple[str, ...]  # on the WireGuard interface, with the range's prefix length


@dataclass(frozen=True)
class WorkloadNs:
    name: str
    node: str
    network: str
    ns: str
    member_if: str  # the veth's end in the member namespace
    address: str | None
    address6: str | None


@dataclass(frozen=True)
class Block:
    """Underlay drop rules for an `unreachable` link, installed at one end."""

    ns: str
    router: bool  # the rules go in a NAT router: filter forwarded traffic
    peers: tuple[str, ...]  # underlay addresses to drop to and from


@dataclass(frozen=True)
class Topology:
    prefix: str
    underlay_ns: str
    hosts: tuple[Host, ...]
    members: tuple[Member, ...]
    workloads: tuple[WorkloadNs, ...]
    veths: tuple[Veth, ...]  # the underlay's: nodes, NAT routers, the bridge
    bridge_ports: tuple[str, ...]
    blocks: tuple[Block, ...]
    tunnels: tuple[tuple[str, str, str], ...] = ()  # (node, gateway, WireGuard name)
    gateways: tuple[GatewayHost, ...] = ()  # the public side (hercc.lab.public)
    internet: Internet | None = None
    collectors: tuple[Collector, ...] = ()  # the NetFlow collectors (hercc.lab.collectors)

    def underlay_namespaces(self) -> tuple[str, ...]:
        """The harness's namespaces, in creation order: underlay, nodes, NAT routers,
        gateways, internet, collectors."""
        names = [self.underlay_ns]
        for h in self.hosts:
            names.append(h.ns)
            if h.router_ns is not None:
                names.append(h.router_ns)
        names += [g.ns for g in self.gateways]
        if self.internet is not None:
            names.append(self.internet.ns)
        names += collector_namespaces(self.collectors)
        return tuple(names)

    def namespaces(self) -> tuple[str, ...]:
        """Every namespace: the underlay's, then the nodes' overlays (networks, workloads)."""
        overlay = [m.ns for m in self.members] + [w.ns for w in self.workloads]
        return (*self.underlay_namespaces(), *overlay)

    def host(self, node: str) -> Host:
        for h in self.hosts:
            if h.node == node:
                return h
        raise KeyError(node)

    def member(self, node: str, network: str) -> Member:
        for m in self.members:
            if m.node == node and m.network == network:
                return m
        raise KeyError(f"{node}@{network}")


def endpoint_host(endpoint: str) -> str:
    """The address part of an IR endpoint (`192.0.2.10:51820`, `[2001:db8::1]:51820`)."""
    host = endpoint
    if endpoint.startswith("["):
        host = endpoint[1 : endpoint.index("]")]
    elif endpoint.count(":") == 1:
        host = endpoint.rsplit(":", 1)[0]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError as exc:
        raise LabError(f"endpoint {endpoint!r}: the lab needs an IP address") from exc
    if addr.version != 4:
        raise LabError(f"endpoint {endpoint!r}: the lab's underlay is IPv4 only")
    return str(addr)


def _with_len(address: str, cidr: str | None) -> str:
    length = 32 if cidr is None else ipaddress.ip_network(cidr).prefixlen
    if cidr is None and ":" in address:
        length = 128
    return f"{address}/{length}"


def node_namespace(prefix: str, node: str) -> str:
    """A node's underlay namespace: where its wireguard-go and its enterprise links live."""
    return f"{prefix}-n-{node}"


def member_namespace(prefix: str, node: str, network: str) -> str:
    return f"{prefix}-x-{node}-{network}"


def workload_namespace(prefix: str, workload: str) -> str:
    return f"{prefix}-w-{workload}"


def nat_slot(h: Host) -> int:
    """The index of a nat node's blocks in NAT_INSIDE and NAT_OUTSIDE."""
    assert h.router_outside is not None
    outside = ipaddress.IPv4Interface(h.router_outside).ip
    return int(outside) - int(NAT_OUTSIDE.network_address) - 1


def uplinks(h: Host, underlay_ns: str) -> list[Veth]:
    """The veths that plug a node into the underlay: directly, or through its NAT router."""
    if h.router_ns is None:
        return [Veth(h.ns, "ul", underlay_ns, h.port)]
    return [Veth(h.ns, "ul", h.router_ns, "lan"), Veth(h.router_ns, "wan", underlay_ns, h.port)]


def topology_of(
    model: ir.IR,
    prefix: str,
    wg_names: Mapping[tuple[str, str], str] | None = None,
    running: Mapping[str, Host] | None = None,
) -> Topology:
    """The lab of `model`; `wg_names`: (node, network) -> WireGuard name to keep
    ((node, `gateway:<name>`) for a node's tunnel to a gateway).

    `running`: the hosts of a running lab. A node keeps its host (bridge port,
    NAT addresses) while its kind and endpoint stay; a new or changed one
    takes a bridge port and NAT block that no kept host holds.
    """
    if not _PREFIX.fullmatch(prefix):
        raise LabError(f"lab prefix {prefix!r}: 1-{PREFIX_MAX} of a-z0-9, starting with a letter")
    under = f"{prefix}-u"
    nets = {n.name: n for n in model.networks}
    old = dict(running or {})
    taken = {h.port for h in old.values()}
    ports = (f"p{i}" for i in itertools.count() if f"p{i}" not in taken)
    used = {nat_slot(h) for h in old.values() if h.kind == "nat"}
    slots = (i for i in itertools.count() if i not in used)
    hosts: list[Host] = []
    public_seen: dict[str, str] = {}
    for node in model.nodes:
        ns = node_namespace(prefix, node.name)
        was = old.get(node.name)
        if node.kind == "public":
            endpoints = {endpoint_host(m.endpoint) for m in node.networks if m.endpoint}
            if len(endpoints) != 1:
                raise LabError(f"node {node.name}: needs exactly one endpoint address")
            addr = endpoints.pop()
            ip = ipaddress.IPv4Address(addr)
            if ip in NAT_INSIDE or ip in NAT_OUTSIDE:
                raise LabError(f"node {node.name}: {addr} collides with the lab's NAT ranges")
            if addr in public_seen:
                raise LabError(f"nodes {public_seen[addr]} and {node.name} share {addr}")
            public_seen[addr] = node.name
            if was is not None and was.kind == "public" and was.public_ip == addr:
                hosts.append(was)
            else:
                hosts.append(Host(node.name, "public", ns, f"{addr}/32", None, addr, next(ports)))
        elif was is not None and was.kind == "nat":
            hosts.append(was)
        else:
            slot = next(slots)
            inside = ipaddress.IPv4Network((int(NAT_INSIDE.network_address) + 4 * slot, 30))
            outside = NAT_OUTSIDE.network_address + slot + 1
            hosts.append(
                Host(
                    node.name,
                    "nat",
                    ns,
                    f"{inside.network_address + 2}/30",
                    str(inside.network_address + 1),
                    str(outside),
                    next(ports),
                    router_ns=f"{prefix}-r-{node.name}",
                    router_inside=f"{inside.network_address + 1}/30",
                    router_outside=f"{outside}/32",
                )
            )
    veths = [v for h in hosts for v in uplinks(h, under)]

    members: list[Member] = []
    workloads: list[WorkloadNs] = []
    kept = dict(wg_names or {})
    taken = set(kept.values())
    fresh = (f"{prefix}w{i}" for i in range(1_000_000) if f"{prefix}w{i}" not in taken)
    naming = Naming()
    for node in model.nodes:
        ports_used: dict[int, str] = {}
        for m in node.networks:
            if m.listen_port in ports_used:
                raise LabError(
                    f"node {node.name}: networks {ports_used[m.listen_port]} and {m.network} "
                    f"both listen on port {m.listen_port}"
                )
            ports_used[m.listen_port] = m.network
            net = nets[m.network]
            here = [w for w in model.workloads if w.node == node.name and w.network == m.network]
            addrs = []
            if m.address is not None:
                addrs.append(_with_len(m.address, net.range))
            if m.address6 is not None:
                addrs.append(_with_len(m.address6, net.range6))
            member = Member(
                node.name,
                m.network,
                member_namespace(prefix, node.name, m.network),
                kept.get((node.name, m.network)) or next(fresh),
                m.listen_port,
                tuple(addrs),
            )
            members.append(member)
            workloads += [
                WorkloadNs(
                    w.name,
                    w.node,
                    w.network,
                    workload_namespace(prefix, w.name),
                    naming.veth_host(w.name),
                    w.address,
                    w.address6,
                )
                for w in here
            ]
    # a node's gateway tunnels: WireGuard interfaces too, named from the same pool
    tunnels = tuple(
        (t.node, gw.name, kept.get((t.node, GATEWAY_PREFIX + gw.name)) or next(fresh))
        for gw in model.gateways
        for t in gw.tunnels
    )
    known = {w.name for w in model.workloads}
    placed = {w.name for w in workloads}
    if known != placed:
        raise LabError(f"workloads without a node in their network: {sorted(known - placed)}")

    by_node = {h.node: h for h in hosts}
    drops: dict[str, set[str]] = {}
    for link in model.underlay.links:
        if link.cost is not None:
            continue
        for here_name, there_name in ((link.a, link.b), (link.b, link.a)):
            drops.setdefault(here_name, set()).add(by_node[there_name].public_ip)
    blocks = tuple(
        Block(
            by_node[name].router_ns or by_node[name].ns,
            by_node[name].router_ns is not None,
            tuple(sorted(addrs)),
        )
        for name, addrs in sorted(drops.items())
    )

    gateways, internet = public_of(model, prefix, public_seen)
    result = Topology(
        prefix,
        under,
        tuple(hosts),
        tuple(members),
        tuple(workloads),
        tuple(veths),
        tuple(h.port for h in hosts),
        blocks,
        tunnels,
        gateways,
        internet,
        collectors_of(model, prefix, public_seen, gateways),
    )
    _check_names(result)
    return result


def _check_names(t: Topology) -> None:
    names = t.namespaces()
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LabError(f"namespace names collide: {dupes}")
    wg = [m.wg_if for m in t.members] + [name for _, _, name in t.tunnels]
    wg += [g.wg_if for g in t.gateways]
    twice = sorted({n for n in wg if wg.count(n) > 1})
    if twice:
        raise LabError(f"WireGuard interface names collide: {twice}")
    bad = [n for n in names if "/" in n or len(n) > 200]
    if bad:
        raise LabError(f"unusable namespace names: {bad}")
    ifnames = [m.wg_if for m in t.members] + [w.member_if for w in t.workloads]
    ifnames += [v.if_a for v in t.veths] + [v.if_b for v in t.veths]
    long = [n for n in ifnames if len(n) > IFNAME_MAX]
    if long:
        raise LabError(f"interface names longer than {IFNAME_MAX}: {long}")
