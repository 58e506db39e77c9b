"""Live state of a node's network namespaces as Resources (hercc.resources).

Three boundaries stand in front of the system, each swappable by a fake:

  Netlink          namespaces() and snapshot(ns): links, addresses and routes of one
                   namespace as plain data (hercc.state.netlink; PyrouteNetlink:
                   pyroute2 `IPRoute(netns=...)`);
  WireGuardDriver  keys, port and peers of a WireGuard device (hercc.state.wireguard);
  Sysctl           read(ns, keys): values under /proc/sys as that namespace sees them
                   (hercc.state.sysctl; ProcSysctl: one `ip netns exec NS grep` per
                   namespace);
  Nft              ruleset(ns): a namespace's nftables ruleset (hercc.state.nftables;
                   NftCli: `ip netns exec NS nft [-j] list ruleset`), read only in
                   the namespaces asked for (`tables=`);
  Procs            argv_in(pid, ns): a recorded process's arguments, when it runs in
                   NS (hercc.state.probes; ProcProbes: /proc), for the tunnels'
                   liveness probes recorded in the PID file asked for (`probes=`).
  Bpf              the eBPF programs attached in a namespace and those the node pinned
                   (hercc.state.bpf; BpfCli: `ip -j`, `tc -j` and the bpffs), read only
                   in the namespaces asked for (`dataplane=`).
  Vici             a charon's connections, keys and SAs (hercc.state.ipsec; ViciSocket:
                   the VICI socket), read only when asked for (`ipsec=`).
  the exporter     the node's flow exporter, by the PID and config recorded under the
                   state directory asked for (`exporter=`; hercc.state.exporter_proc:
                   /proc/PID/cmdline).

`StateReader.read` turns them into a `LiveState`: the owned resources and the
names that exist but are not ours.

Ownership. A namespace is ours when the node's OwnedRegistry lists it; an
interface when its alias is `hercules:<node>` (registry.owner_alias); a route
or an address when it sits on an interface of ours. Everything else that
exists in the namespaces read is "foreign", by name:

  "<NS>"          an existing namespace that is not ours
  "<NS>/<IF>"     an interface without our alias (`lo` included), or with our alias
                  but of a kind Hercules does not make (then the planner must not
                  reuse the name either); a port of a bridge of ours too, which
                  is also read as a `port` resource (state/links.py)
  "<NS>/<dst>"    a route we could have made (main table, unicast, proto boot or
                  static) on an interface that is not ours
  "<NS>/<family>/<table>"  an nftables table without our comment (state/nftables.py)
  "<NS>/<IF>/<hook>"       a program at a hook that is not one we pinned (state/bpf.py)
  "<connection>"  a charon connection the node's record does not list (state/ipsec.py)

What the kernel adds by itself is neither ours nor foreign: the IPv6
link-local address it gives every interface (`_is_kernel_address`: IFA_PROTO
kernel_ll on 6.3+, IFA_F_STABLE_PRIVACY, or an EUI-64 interface id), addresses
with a kernel protocol or a lifetime (SLAAC, DHCP), routes with any protocol
but boot/static (`proto kernel` prefix routes, RA routes), routes outside the
main table, and non-unicast routes. A link-local address added by hand (like
the fe80::1 next hop on a workload's veth) is an address like any other.

The host's own namespace, a real gateway's, is HOST_NETNS in ids
(resources/gateway_naming.py): it is read when asked for (`also`), never
listed as a namespace, owned or foreign.

Three rules shared with the desired state live in hercc.resources and are
applied here, not by callers: a veth pair whose both ends are ours (and read)
is one resource, named by `veth_pair_end` (its other end's addresses and
routes hang under it); a sysctl at its default (`sysctl_default`) is left
out; a private key is fingerprinted clamped (`private_key_fingerprint`).

Attribute forms (the desired state must write the same):
  address id   "<NS>/<IF>/<ip>/<prefixlen>" in `ipaddress.ip_interface` text form
  route id     "<NS>/<network>" in `ipaddress.ip_network` form ("0.0.0.0/0" for default)
  route attrs  dev (interface name), via (gateway text or None)
  wireguard    listen_port (int or None), mtu, up (admin state), private_key
               (fingerprint or None), fwmark (None when 0)
  peer         endpoint ("ip:port" / "[ip6]:port" or None), allowed_ips
               (resources/canonical.py), keepalive (None when off),
               preshared_key (fingerprint or None); no label (a peer's node name
               is not known live)
  veth         peer_netns (None when the peer is outside every named namespace),
               peer_ifname (None when unknown), mtu
  sysctl       value: the text under /proc/sys, stripped (e.g. "1"); only when it
               is not the default
  bridge, vxlan, vlan, port   as state/links.py reads them
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.gateway_naming import HOST_NETNS
from hercc.resources.ids import (
    AddressId,
    InterfaceId,
    PeerId,
    RouteId,
    SysctlId,
    format_id,
    veth_pair_end,
)
from hercc.resources.model import FORCES_NEW, SENSITIVE, Resource, State, state_of
from hercc.resources.naming import WORKLOAD_IFNAME
from hercc.resources.sysctl import sysctl_default
from hercc.state.bpf import Bpf, BpfCli, read_bpf
from hercc.state.errors import WireGuardUnavailable
from hercc.state.exporter_proc import read_exporter
from hercc.state.ipsec import IpsecQuery, read_ipsec
from hercc.state.links import L2_KINDS, l2_link, ports
from hercc.state.netlink import (
    IFA_F_PERMANENT,
    RT_TABLE_MAIN,
    RTN_UNICAST,
    Address,
    Link,
    Netlink,
    NsSnapshot,
    PyrouteNetlink,
    Route,
)
from hercc.state.nftables import Nft, NftCli, read_tables
from hercc.state.probes import ProcProbes, Procs, read_probes
from hercc.state.registry import is_owner_alias
from hercc.state.sysctl import ProcSysctl, Sysctl
from hercc.state.wireguard import default_driver
from hercc.state.wireguard.model import WgDevice, WireGuardDriver

__all__ = ["LiveState", "StateReader"]

IFA_F_STABLE_PRIVACY = 0x800
KERNEL_ADDR_PROTOS = frozenset({1, 2, 3})  # IFA_PROTO kernel_lo, kernel_ra, kernel_ll
IFA_PROTO_UNSPEC = 0
OUR_ROUTE_PROTOS = frozenset({3, 4})  # RTPROT_BOOT (ip route add), RTPROT_STATIC
WIREGUARD_KINDS = frozenset({"wireguard", "tun"})  # kernel module; wireguard-go's TUN


@dataclass(frozen=True)
class LiveState:
    state: State  # only what is ours
    foreign: frozenset[str] = field(default_factory=frozenset)


def _is_kernel_address(a: Address) -> bool:
    """What the kernel (or SLAAC, DHCP) made: not ours, not foreign.

    An IPv6 link-local address is the kernel's when its IFA_PROTO says so
    (kernel_ll, Linux 6.3+), when it is a stable-privacy (or random) one, or,
    on kernels that report no protocol, when its interface id is an EUI-64
    one (ff:fe in the middle). `ip addr add fe80::1/64` gives none of these.
    """
    if a.proto in KERNEL_ADDR_PROTOS:
        return True
    if not a.flags & IFA_F_PERMANENT:
        return True
    ip = ipaddress.ip_interface(a.cidr).ip
    if ip.version == 6 and ip.is_link_local:
        if a.flags & IFA_F_STABLE_PRIVACY:
            return True
        if a.proto in (None, IFA_PROTO_UNSPEC) and ip.packed[11:13] == b"\xff\xfe":
            return True
    return False


def _is_our_kind_of_route(r: Route) -> bool:
    if r.table != RT_TABLE_MAIN or r.type != RTN_UNICAST or r.proto not in OUR_ROUTE_PROTOS:
        return False
    net = ipaddress.ip_network(r.dst, strict=False)
    return not (net.version == 6 and (net.is_link_local or net.is_multicast))


class StateReader:
    """Reads what Hercules owns on a node, through swappable boundaries."""

    def __init__(
        self,
        netlink: Netlink | None = None,
        wireguard: WireGuardDriver | None = None,
        sysctl: Sysctl | None = None,
        nft: Nft | None = None,
        procs: Procs | None = None,
        bpf: Bpf | None = None,
    ) -> None:
        self.netlink: Netlink = netlink or PyrouteNetlink()
        self.wireguard: WireGuardDriver = wireguard or default_driver()
        self.sysctl: Sysctl = sysctl or ProcSysctl()
        self.nft: Nft = nft or NftCli()
        self.procs: Procs = procs or ProcProbes()
        self.bpf: Bpf = bpf or BpfCli()

    def read(
        self,
        node: str,
        owned: Iterable[str],
        *,
        also: Iterable[str] = (),
        sysctls: Mapping[str, Iterable[str]] | None = None,
        workload_ifname: str = WORKLOAD_IFNAME,
        tables: Iterable[str] = (),
        probes: Path | None = None,
        dataplane: Iterable[str] = (),
        ipsec: IpsecQuery | None = None,
        exporter: Path | None = None,
    ) -> LiveState:
        """The owned state of `node` and the foreign names next to it.

        `owned`: the namespaces the registry lists. `also`: namespaces that are
        not ours but may hold interfaces of ours (a workload's namespace made by
        someone else). `sysctls`: namespace -> keys to read there (values at
        their default are left out). `workload_ifname`: the workload end of a
        veth pair (ids.veth_pair_end), Naming.workload_ifname. `tables`: the
        namespaces whose nftables tables to read (state/nftables.py).
        `probes`: the PID file of the node's liveness probes (state/probes.py).
        `dataplane`: the namespaces whose eBPF attachments to read (state/bpf.py); they are
        read too in those of `tables` where the node pinned programs.
        `ipsec`: the charon and the record of the node's IPsec connections (state/ipsec.py).
        `exporter`: the state directory where the node's flow exporter is recorded
        (state/exporter_proc.py).
        """
        owned_set = set(owned)
        existing = set(self.netlink.namespaces())
        foreign: set[str] = {ns for ns in existing if ns not in owned_set}
        existing.add(HOST_NETNS)  # a gateway's (resources/gateway_naming.py), when asked for
        resources: list[Resource] = [Resource("netns", ns) for ns in sorted(owned_set & existing)]
        snapshots: dict[str, NsSnapshot | None] = {}
        reading = (owned_set | set(also)) & existing
        for ns in sorted(reading):
            snap = self._snapshot(ns, snapshots)
            if snap is None:
                continue  # deleted while we looked
            resources += self._namespace(
                node, snap, snapshots, foreign, frozenset(reading), workload_ifname
            )
        for ns, keys in sorted((sysctls or {}).items()):
            if ns not in existing:
                continue
            values = self.sysctl.read(ns, sorted(set(keys)))
            resources += [
                Resource(
                    "sysctl", format_id(SysctlId(ns, key)), {"value": value}, parent=f"netns.{ns}"
                )
                for key, value in sorted(values.items())
                if value != sysctl_default(key)
            ]
        for ns in sorted(set(tables) & existing):
            ours, others = read_tables(ns, self.nft)
            resources += ours
            foreign |= others
        if probes is not None:
            resources += read_probes(probes, self.procs)
        bpf, others = read_bpf(node, set(dataplane) & existing, set(tables) & existing, self.bpf)
        resources += bpf
        foreign |= others
        if ipsec is not None:
            conns, others = read_ipsec(ipsec)
            resources += conns
            foreign |= others
        if exporter is not None:
            resources += read_exporter(node, exporter)
        return LiveState(state=state_of(resources), foreign=frozenset(foreign))

    def _snapshot(self, ns: str, cache: dict[str, NsSnapshot | None]) -> NsSnapshot | None:
        if ns not in cache:
            cache[ns] = self.netlink.snapshot(ns)
        return cache[ns]

    def _peer_link(
        self, link: Link, snap: NsSnapshot, cache: dict[str, NsSnapshot | None]
    ) -> Link | None:
        if link.peer_index is None or link.peer_netns is None:
            return None
        other = snap if link.peer_netns == snap.name else self._snapshot(link.peer_netns, cache)
        if other is None:
            return None
        return next((lk for lk in other.links if lk.index == link.peer_index), None)

    def _namespace(
        self,
        node: str,
        snap: NsSnapshot,
        cache: dict[str, NsSnapshot | None],
        foreign: set[str],
        reading: frozenset[str] = frozenset(),
        workload_ifname: str = WORKLOAD_IFNAME,
    ) -> list[Resource]:
        ns = snap.name
        out: list[Resource] = []
        managed: dict[int, tuple[str, str]] = {}  # ifindex -> (name, resource address)
        for link in snap.links:
            ident = format_id(InterfaceId(ns, link.name))
            if not is_owner_alias(link.alias, node):
                foreign.add(ident)
                continue
            if link.kind == "veth":
                peer = self._peer_link(link, snap, cache)
                if (
                    peer is not None
                    and link.peer_netns in reading
                    and is_owner_alias(peer.alias, node)
                ):
                    other = format_id(InterfaceId(link.peer_netns, peer.name))
                    if veth_pair_end(ident, other, workload_ifname) == other:
                        # the pair is reported by its other end; this end's children hang there
                        managed[link.index] = (link.name, f"veth.{other}")
                        continue
                res = Resource(
                    "veth",
                    ident,
                    {
                        "peer_netns": link.peer_netns,
                        "peer_ifname": peer.name if peer is not None else None,
                        "mtu": link.mtu,
                    },
                    forces_new=FORCES_NEW["veth"],
                    parent=f"netns.{ns}",
                )
                out.append(res)
                managed[link.index] = (link.name, res.address)
            elif link.kind in WIREGUARD_KINDS:
                try:
                    device = self.wireguard.read(link.name, netns=ns)
                except WireGuardUnavailable:
                    if link.kind == "tun":  # a plain TUN with our alias: not ours to manage
                        foreign.add(ident)
                        continue
                    raise
                wg = self._wireguard(ident, link, device, ns)
                out += wg
                managed[link.index] = (link.name, wg[0].address)
            elif link.kind in L2_KINDS:
                l2 = l2_link(link, snap)
                out.append(l2)
                managed[link.index] = (link.name, l2.address)
            else:
                foreign.add(ident)
        out += ports(snap, node)  # attached to a bridge of ours, still not ours (foreign)
        for addr in snap.addresses:
            if addr.index not in managed or _is_kernel_address(addr):
                continue
            ifname, parent = managed[addr.index]
            cidr = str(ipaddress.ip_interface(addr.cidr))
            out.append(Resource("address", format_id(AddressId(ns, ifname, cidr)), parent=parent))
        best: dict[str, Route] = {}
        for route in snap.routes:
            if not _is_our_kind_of_route(route):
                continue
            dst = str(ipaddress.ip_network(route.dst, strict=False))
            if route.multipath or route.oif not in managed:
                foreign.add(format_id(RouteId(ns, dst)))
                continue
            if dst not in best or route.priority < best[dst].priority:
                best[dst] = route
        for dst, route in sorted(best.items()):
            assert route.oif is not None
            ifname, parent = managed[route.oif]
            out.append(
                Resource(
                    "route",
                    format_id(RouteId(ns, dst)),
                    {"dev": ifname, "via": route.gateway},
                    parent=parent,
                )
            )
        return out

    @staticmethod
    def _wireguard(ident: str, link: Link, device: WgDevice, ns: str) -> list[Resource]:
        wg = Resource(
            "wireguard",
            ident,
            {
                "listen_port": device.listen_port,
                "mtu": link.mtu,
                "up": link.up,
                "private_key": (
                    None
                    if device.private_key is None
                    else private_key_fingerprint(device.private_key)
                ),
                "fwmark": device.fwmark,
            },
            sensitive=SENSITIVE["wireguard"],
            parent=f"netns.{ns}",
        )
        peers = [
            Resource(
                "peer",
                format_id(PeerId(ns, link.name, pub)),
                {
                    "endpoint": peer.endpoint,
                    "allowed_ips": list(peer.allowed_ips),
                    "keepalive": peer.keepalive,
                    "preshared_key": (
                        None if peer.preshared_key is None else fingerprint(peer.preshared_key)
                    ),
                },
                sensitive=SENSITIVE["peer"],
                parent=wg.address,
            )
            for pub, peer in sorted(device.peers.items())
        ]
        return [wg, *peers]
