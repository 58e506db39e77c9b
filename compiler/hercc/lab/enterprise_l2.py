"""The lab's far side of enterprise VXLANs, and its stand-ins for the ports a node's links name.

For each VXLAN of the spec (VxlanFar), three namespaces:

  <p>-ev-<name>  the far end: plugged into the underlay bridge (port `ev<i>`) at
                 the link's `remote` as a /32 with an on-link default route, like
                 a public node; it holds bridge `br0` with the matching VXLAN
                 `vx0` (same VNI and port, local and remote swapped, over `ul`)
                 and a veth to the far host
  <p>-eh-<name>  a host on the enterprise segment behind it: 172.31.<i>.2/24
  <p>-el-<name>  a host on the node's side of the segment: 172.31.<i>.1/24 on a
                 macvlan of the VXLAN's bridge (or of the VXLAN itself when it
                 has none), moved into this namespace once the node's apply
                 made the bridge (`join`). A macvlan is no bridge port and lives
                 outside the node's namespace, so the node's plan never sees it;
                 a veth in the bridge would be a port the spec does not list,
                 which the next plan detaches.

The VXLAN's `local` maps onto the lab node as an address on its uplink `ul`:
a public node's underlay address is its endpoint, so when `local` is that
address (reference.herc's alpha) nothing is added, and otherwise `local/32`
is (the far end finds it by ARP on the bridge, as it finds every /32 there).
A nat node's uplink is behind its NAT router, which the far end cannot
reach: such a VXLAN cannot run in the lab (LabError), nor can a `remote`
that is another lab address, nor a VXLAN over IPv6 (the lab's underlay is
IPv4).

For each node with links (PortStandIns), every existing interface they
name (a bridge's port, a VLAN's parent: NodeLinks.attachments) that the
node's underlay namespace lacks is made, as on a real machine they exist
before Hercules: a veth whose other end `eth0` is in `<p>-ep-<node>-<IF>`.

`lab check` pings across each VXLAN's segment both ways (`near:<name>`,
`far:<name>`, also `lab exec` targets). This kernel has no 8021q: there the
lab's nodes leave their VLANs (and their addresses) out of their desired
state (`runnable`), and a machine with it runs them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hercc import ir
from hercc.backends.enterprise_links import node_links
from hercc.diagnostics import LabError
from hercc.lab.daemons import Daemon
from hercc.lab.far_side import FarEndpoint, FarSide
from hercc.lab.topology import Topology
from hercc.lab.underlay import (
    NS_SYSCTLS,
    TIMEOUT,
    add_namespace,
    has_link,
    ip_batch,
    netns_exists,
)
from hercc.resources.model import State
from hercc.resources.naming import vxlan_ifname
from hercc.state.links import vlan_unavailable_reason
from hercc.sysio.process import run

__all__ = ["SEGMENT", "PortStandIns", "VxlanFar", "l2_far_sides", "runnable"]

SEGMENT = ipaddress.IPv4Network("172.31.0.0/16")  # a /24 per VXLAN: near .1, far .2


def _netns_add(ns: str, created: list[str]) -> None:
    add_namespace(ns, created)
    run(["sysctl", "-qw", *NS_SYSCTLS], netns=ns, timeout=TIMEOUT, error=LabError)
    ip_batch(["link set lo up"], ns=ns)


@dataclass(frozen=True)
class VxlanFar:
    """One VXLAN's far end, far host and near host (see the module docstring)."""

    link: str  # the VXLAN's name in the spec
    enterprise: str
    node: str
    vni: int
    local: str
    remote: str
    port: int
    lower: str  # the node's interface the near host's macvlan hangs off
    node_ns: str
    node_address: str
    underlay_ns: str
    underlay_port: str
    far_ns: str
    far_host_ns: str
    near_ns: str
    near: str  # address/prefix
    far: str

    def namespaces(self) -> tuple[str, ...]:
        return (self.far_ns, self.far_host_ns, self.near_ns)

    def build(self, created: list[str], daemons: list[Daemon]) -> None:
        """Made afresh: what a `lab apply` finds of it goes first (its VNI may have changed)."""
        if has_link(self.underlay_ns, self.underlay_port):
            # a namespace goes in the background: its veths' other ends with it, later
            ip_batch([f"link del {self.underlay_port}"], ns=self.underlay_ns)
        for ns in reversed(self.namespaces()):
            if netns_exists(ns):
                run(["ip", "netns", "del", ns], timeout=TIMEOUT, error=LabError)
        for ns in self.namespaces():
            _netns_add(ns, created)
        ip_batch(
            [
                f"link add ul netns {self.far_ns} type veth peer name {self.underlay_port} "
                f"netns {self.underlay_ns}",
                f"link add e0 netns {self.far_ns} type veth peer name eth0 "
                f"netns {self.far_host_ns}",
            ]
        )
        ip_batch([f"link set {self.underlay_port} master br0 up"], ns=self.underlay_ns)
        ip_batch(
            [
                f"address add {self.remote}/32 dev ul",
                "link set ul up",
                "route add default dev ul",
                "link add br0 type bridge",
                "link set br0 up",
                f"link add vx0 type vxlan id {self.vni} local {self.remote} remote {self.local} "
                f"dstport {self.port} dev ul",
                "link set vx0 master br0 up",
                "link set e0 master br0 up",
            ],
            ns=self.far_ns,
        )
        ip_batch([f"address add {self.far} dev eth0", "link set eth0 up"], ns=self.far_host_ns)
        if self.local != self.node_address:
            ip_batch([f"address replace {self.local}/32 dev ul"], ns=self.node_ns)

    def prepare(self) -> None:
        """Nothing: the far end needs nothing of the node before its plan."""

    def join(self) -> None:
        """The near host's macvlan on the node's bridge, once both exist and it has none."""
        if not netns_exists(self.near_ns) or has_link(self.near_ns, "eth0"):
            return
        if not has_link(self.node_ns, self.lower):
            raise LabError(f"vxlan {self.link}: no {self.lower} on node {self.node} to join")
        temp = f"lv-{self.underlay_port}"
        ip_batch(
            [
                f"link add link {self.lower} name {temp} type macvlan mode bridge",
                f"link set {temp} netns {self.near_ns}",
            ],
            ns=self.node_ns,
        )
        ip_batch(
            [f"link set {temp} name eth0", f"address add {self.near} dev eth0", "link set eth0 up"],
            ns=self.near_ns,
        )

    def endpoints(self) -> tuple[FarEndpoint, ...]:
        network = f"vxlan {self.enterprise}/{self.link}"
        return (
            FarEndpoint(f"near:{self.link}", network, self.near_ns, (_ip(self.near),), self.node),
            FarEndpoint(f"far:{self.link}", network, self.far_host_ns, (_ip(self.far),)),
        )

    def targets(self) -> dict[str, str]:
        """None but its endpoints."""
        return {}


def _ip(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).ip)


@dataclass(frozen=True)
class PortStandIns:
    """A lab node's stand-ins for the existing interfaces its links name."""

    node: str
    node_ns: str
    ports: tuple[tuple[str, str], ...]  # (interface, the namespace of its lab host)

    def namespaces(self) -> tuple[str, ...]:
        return tuple(ns for _, ns in self.ports)

    def build(self, created: list[str], daemons: list[Daemon]) -> None:
        self._make(created)

    def prepare(self) -> None:
        self._make([])

    def _make(self, created: list[str]) -> None:
        if not netns_exists(self.node_ns):
            return  # a node the apply adds: made again once it is plugged in
        for ifname, ns in self.ports:
            if has_link(self.node_ns, ifname):
                continue
            if not netns_exists(ns):
                _netns_add(ns, created)
            ip_batch(
                [f"link add {ifname} netns {self.node_ns} type veth peer name eth0 netns {ns}"]
            )
            ip_batch([f"link set {ifname} up"], ns=self.node_ns)
            ip_batch(["link set eth0 up"], ns=ns)

    def join(self) -> None:
        """Nothing: the node's apply attaches the ports."""

    def endpoints(self) -> tuple[FarEndpoint, ...]:
        return ()

    def targets(self) -> dict[str, str]:
        return {}


def l2_far_sides(model: ir.IR, t: Topology, directory: Path) -> Sequence[FarSide]:
    """The VXLANs' far sides and every node's port stand-ins (see the module docstring);
    they start no daemon, so `directory` holds nothing of theirs."""
    out: list[FarSide] = []
    prefix, hosts = t.prefix, {h.node: h for h in t.hosts}
    taken = {h.public_ip: f"lab node {h.node}" for h in t.hosts}
    taken |= {g.address.split("/")[0]: f"gateway {g.gateway}" for g in t.gateways}
    if t.internet is not None:
        taken[t.internet.address] = "the internet namespace"
    vxlans = [(e.name, v) for e in model.enterprise for v in e.vxlan]
    if len(vxlans) > 256:
        raise LabError("the lab runs at most 256 VXLANs (one /24 of 172.31.0.0/16 each)")
    for i, (enterprise, v) in enumerate(vxlans):
        host = hosts.get(v.node)
        if host is None or host.kind != "public":
            raise LabError(
                f"vxlan {v.name}: node {v.node} is behind NAT in the lab, where its far end "
                f"at {v.remote} could not reach its local address {v.local}"
            )
        if ipaddress.ip_address(v.local).version != 4:
            raise LabError(f"vxlan {v.name}: the lab's underlay is IPv4 only ({v.local})")
        if v.remote in taken:
            raise LabError(f"vxlan {v.name}: its remote {v.remote} is {taken[v.remote]}'s")
        taken[v.remote] = f"the far end of vxlan {v.name}"
        segment = list(SEGMENT.subnets(new_prefix=24))[i]
        ifname = vxlan_ifname(v.name)
        out.append(
            VxlanFar(
                v.name,
                enterprise,
                v.node,
                v.vni,
                v.local,
                v.remote,
                v.port,
                v.bridge if v.bridge is not None else ifname,
                host.ns,
                host.public_ip,
                t.underlay_ns,
                f"ev{i}",
                f"{prefix}-ev-{v.name}",
                f"{prefix}-eh-{v.name}",
                f"{prefix}-el-{v.name}",
                f"{segment.network_address + 1}/24",
                f"{segment.network_address + 2}/24",
            )
        )
    for node, host in sorted(hosts.items()):  # a node's links live in its underlay namespace
        existing = node_links(model, node).attachments
        if existing:
            ports = tuple((a.ifname, f"{prefix}-ep-{node}-{a.ifname}") for a in existing)
            out.append(PortStandIns(node, host.ns, ports))
    return out


def runnable(desired: State) -> tuple[State, list[str]]:
    """A lab node's desired state without what this kernel cannot make: its VLANs (and
    their addresses) where there is no 8021q (state/links.vlan_unavailable_reason);
    and what was left out, a line for each VLAN with the kernel's reason."""
    vlans = sorted(a for a, r in desired.items() if r.kind == "vlan")
    why = vlan_unavailable_reason() if vlans else None
    if why is None:
        return desired, []
    kept = {a: r for a, r in desired.items() if a not in vlans and r.parent not in vlans}
    return kept, [f"{a}: {why}" for a in vlans]
