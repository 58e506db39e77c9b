"""The desired state of one node: the resources (hercc.resources) the IR asks it to have.

`desired_state` is a pure function of the IR, a `Naming` and, optionally, a
`KeyLookup`; it reads nothing itself. `DirKeys` is the one boundary that reads
a keys directory.

What a node gets, per network it is in (NS = naming.netns(network), IF =
naming.wg_ifname(network)):

  netns      NS
  sysctl     NS/net.ipv4.ip_forward = "1" (when the network has a range) and
             NS/net.ipv6.conf.all.forwarding = "1" (when it has a range6), only
             when the node forwards for others or hosts workloads of the network
             (otherwise none: a sysctl at its default "0" is no resource, see
             resources/sysctl.py)
  wireguard  NS/IF: listen_port, mtu, up, private_key (private_key_fingerprint:
             clamped, as the device stores it), fwmark (None: off)
  address    NS/IF/<address>/<prefix of range> and NS/IF/<address6>/<prefix of range6>
  peer       NS/IF/<public key>, one per IR peer, labelled with the peer's node
             name; a peer whose key is unknown is named NS/IF/unknown-key:<node>

and per workload on the node (WNS = naming.workload_netns(w), H = naming.veth_host(w),
W = naming.veth_workload(w), "eth0" by default):

  netns      WNS
  veth       NS/H: the pair, named by its network-side end (ids.veth_pair_end:
             W is naming.workload_ifname); the other end is W in WNS (attrs
             peer_netns, peer_ifname, mtu; peer_netns and peer_ifname force
             replacement)
  address    WNS/W/<address>/32 and WNS/W/<address6>/128; NS/H/fe80::1/64 (the
             IPv6 next hop of the workload; only with address6: a link-local
             address added by hand, which the reader tells from the kernel's own)
  route      WNS/0.0.0.0/0 dev W via the node's overlay address (the gateway is
             outside W's /32: add it onlink; the network namespace answers ARP for
             its own address on H), WNS/::/0 dev W via fe80::1, and in NS
             <address>/32 and <address6>/128 dev H.

Conventions a live reader must share: sysctl values are strings; fwmark,
keepalive (0) and preshared_key are None when unset; a peer of a `psk on`
network whose PSK is not known here (no keys, or not created yet) has
preshared_key PSK_UNKNOWN, so that "a PSK is wanted" and "no PSK" differ
even without keys (apply creates the missing ones: node_service.make_psks); allowed_ips is
`canonical_allowed_ips`, an endpoint `canonical_endpoint` (resources/canonical.py);
secrets are fingerprints (a private key's through `private_key_fingerprint`,
so a key file and a device agree). A peer without an endpoint in the spec (a
nat node) has no `endpoint` attribute at all: WireGuard learns it from the
peer's handshakes, and only desired attributes are compared.
A route with a `via` outside the prefixes of its `dev` is added onlink.

And per gateway tunnel of the node, in the namespace of the network it
serves: its WireGuard interface, addresses, route, peer, and per such
namespace its nftables table (plan/desired_tunnels.py). With a dataplane, the
attachments of its eBPF programs (plan/desired_dataplane.py). Its IPsec
links' connections (plan/desired_ipsec.py). Its enterprise
L2 links: bridges, their ports, VXLANs and VLANs (plan/desired_links.py).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from hercc import ir
from hercc.backends import wireguard
from hercc.diagnostics import OperationError
from hercc.plan.desired_dataplane import dataplane_resources
from hercc.plan.desired_exporter import exporter_resources
from hercc.plan.desired_ipsec import ipsec_resources
from hercc.plan.desired_links import link_resources
from hercc.plan.desired_tunnels import tunnel_resources
from hercc.resources.canonical import canonical_allowed_ips, canonical_endpoint
from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.ids import (
    AddressId,
    InterfaceId,
    PeerId,
    RouteId,
    SysctlId,
    format_id,
    veth_pair_end,
)
from hercc.resources.model import FORCES_NEW, SENSITIVE, Resource, state_of
from hercc.resources.naming import Naming
from hercc.resources.sysctl import FORWARD4, FORWARD6, sysctl_default

__all__ = [
    "IPV6_NEXT_HOP",
    "PSK_UNKNOWN",
    "DirKeys",
    "KeyLookup",
    "PskMaker",
    "desired_state",
]

IPV6_NEXT_HOP = "fe80::1"  # on the network side of every workload's veth
# The preshared_key of a peer that should have a PSK whose value is not known here:
# no fingerprint (those are "sha256:..."), so it never equals a live one.
PSK_UNKNOWN = "(unknown)"


class KeyLookup(Protocol):
    """Where secrets come from. Returns the key (base64) or None when there is none."""

    def private_key(self, node: str) -> str | None: ...

    def psk(self, network: str, a: str, b: str) -> str | None: ...


class PskMaker(Protocol):
    """Where a missing preshared key is made: the same key for (a, b) and (b, a), kept."""

    def make_psk(self, network: str, a: str, b: str) -> str: ...


@dataclass(frozen=True)
class DirKeys:
    """Keys from a `hercc keys` directory. Only `make_psk` creates a key (a missing PSK)."""

    keys_dir: str

    def private_key(self, node: str) -> str | None:
        from hercc.keys import private_key_path, read_private_key

        if not os.path.lexists(private_key_path(self.keys_dir, node)):
            return None
        return read_private_key(self.keys_dir, node)

    def psk(self, network: str, a: str, b: str) -> str | None:
        from hercc.keys import psk_for, psk_path

        if not os.path.lexists(psk_path(self.keys_dir, network, a, b)):
            return None
        return psk_for(self.keys_dir, network, a, b)  # exists: read, not created

    def make_psk(self, network: str, a: str, b: str) -> str:
        """The pair's PSK, created (0600, atomically) in the shared keys directory if missing."""
        from hercc.keys import psk_for

        return psk_for(self.keys_dir, network, a, b)


def _netns(name: str) -> Resource:
    return Resource("netns", name)


def _prefix(cidr: str | None, address: str) -> str:
    if cidr is None:
        raise OperationError(f"address {address} in a network without a matching range")
    return f"{address}/{ipaddress.ip_network(cidr, strict=False).prefixlen}"


def _network(model: ir.IR, name: str) -> ir.Network:
    try:
        return wireguard.network_of(model, name)
    except KeyError:
        raise OperationError(f"network {name} is not in the IR") from None


def _membership(
    model: ir.IR,
    node: ir.Node,
    m: ir.Membership,
    workloads: list[ir.Workload],
    naming: Naming,
    keys: KeyLookup | None,
) -> Iterator[Resource]:
    net = _network(model, m.network)
    ns = naming.netns(m.network)
    ifn = naming.wg_ifname(m.network)
    ns_addr = f"netns.{ns}"
    yield _netns(ns)
    if m.forwarding or workloads:
        if net.range is not None:
            yield _sysctl(ns, FORWARD4, "1")
        if net.range6 is not None:
            yield _sysctl(ns, FORWARD6, "1")
    private_fp = _private_fp(node, keys)
    wg = Resource(
        "wireguard",
        format_id(InterfaceId(ns, ifn)),
        {
            "listen_port": m.listen_port,
            "mtu": m.mtu,
            "up": True,
            "private_key": private_fp,
            "fwmark": None,
        },
        sensitive=SENSITIVE["wireguard"],
        parent=ns_addr,
    )
    yield wg
    if m.address is not None:
        yield _address(ns, ifn, _prefix(net.range, m.address), wg.address)
    if m.address6 is not None:
        yield _address(ns, ifn, _prefix(net.range6, m.address6), wg.address)
    for p in wireguard.sorted_peers(m):
        psk = None
        if p.psk and keys is not None:
            psk = keys.psk(m.network, node.name, p.node)
        key_id = p.pubkey if p.pubkey is not None else f"unknown-key:{p.node}"
        attrs: dict[str, Any] = {}
        if p.endpoint is not None:  # else learned from the peer's handshakes: not compared
            attrs["endpoint"] = canonical_endpoint(p.endpoint)
        attrs["allowed_ips"] = canonical_allowed_ips(p.allowed_ips)
        attrs["keepalive"] = p.keepalive_s or None
        if psk is not None:
            attrs["preshared_key"] = fingerprint(psk)
        else:
            attrs["preshared_key"] = PSK_UNKNOWN if p.psk else None
        yield Resource(
            "peer",
            format_id(PeerId(ns, ifn, key_id)),
            attrs,
            sensitive=SENSITIVE["peer"],
            parent=wg.address,
            label=p.node,
        )
    for w in workloads:
        yield from _workload(m, w, ns, naming)


def _private_fp(node: ir.Node, keys: KeyLookup | None) -> str | None:
    private = keys.private_key(node.name) if keys is not None else None
    try:
        return private_key_fingerprint(private) if private is not None else None
    except OperationError:
        raise OperationError(
            f"node {node.name}: its private key is not 32 bytes of base64 (check the keys)"
        ) from None


def _sysctl(ns: str, key: str, value: str) -> Resource:
    if value == sysctl_default(key):  # a default is no resource (resources/sysctl.py)
        raise ValueError(f"sysctl {key}={value} is its default")
    return Resource("sysctl", format_id(SysctlId(ns, key)), {"value": value}, parent=f"netns.{ns}")


def _address(ns: str, ifname: str, cidr: str, parent: str) -> Resource:
    return Resource("address", format_id(AddressId(ns, ifname, cidr)), parent=parent)


def _route(ns: str, dst: str, dev: str, via: str | None, parent: str) -> Resource:
    return Resource("route", format_id(RouteId(ns, dst)), {"dev": dev, "via": via}, parent=parent)


def _workload(m: ir.Membership, w: ir.Workload, ns: str, naming: Naming) -> Iterator[Resource]:
    wns = naming.workload_netns(w.name)
    host = naming.veth_host(w.name)
    inner = naming.veth_workload(w.name)
    veth_id, inner_id = format_id(InterfaceId(ns, host)), format_id(InterfaceId(wns, inner))
    if veth_pair_end(veth_id, inner_id, naming.workload_ifname) != veth_id:
        raise OperationError(
            f"workload {w.name}: its veth end {host} in {ns} would not name the pair "
            f"(it must not be called {naming.workload_ifname})"
        )
    yield _netns(wns)
    veth = Resource(
        "veth",
        veth_id,
        {"peer_netns": wns, "peer_ifname": inner, "mtu": m.mtu},
        forces_new=FORCES_NEW["veth"],
        parent=f"netns.{ns}",
    )
    yield veth
    on_veth = veth.address
    if w.address is not None:
        yield _address(wns, inner, f"{w.address}/32", on_veth)
        if m.address is not None:
            yield _route(wns, "0.0.0.0/0", inner, m.address, on_veth)
        yield _route(ns, f"{w.address}/32", host, None, on_veth)
    if w.address6 is not None:
        yield _address(ns, host, f"{IPV6_NEXT_HOP}/64", on_veth)
        yield _address(wns, inner, f"{w.address6}/128", on_veth)
        yield _route(wns, "::/0", inner, IPV6_NEXT_HOP, on_veth)
        yield _route(ns, f"{w.address6}/128", host, None, on_veth)


def desired_state(
    model: ir.IR, node: str, naming: Naming | None = None, keys: KeyLookup | None = None
) -> list[Resource]:
    """Every resource `node` should have, sorted by address. Secrets only as fingerprints.

    Raises OperationError for an unknown node or when two resources would get
    the same name (e.g. network "w-x" and workload "x" under the default naming).
    """
    naming = naming if naming is not None else Naming()
    try:
        me = model.node(node)
    except KeyError:
        raise OperationError(f"node {node} is not in the spec") from None
    mine = sorted((w for w in model.workloads if w.node == node), key=lambda w: w.name)
    out: list[Resource] = []
    for m in sorted(me.networks, key=lambda m: m.network):
        here = [w for w in mine if w.network == m.network]
        out.extend(_membership(model, me, m, here, naming, keys))
    out.extend(tunnel_resources(model, me, naming, _private_fp(me, keys)))
    programs = list(dataplane_resources(model, me, naming))
    out.extend(programs)
    out.extend(exporter_resources(model, me, programs))
    out.extend(ipsec_resources(model, me))
    out.extend(link_resources(model, me, naming))
    try:
        state_of(out)
    except ValueError as exc:
        raise OperationError(f"node {node}: names collide: {exc}") from None
    return sorted(out, key=lambda r: r.address)
