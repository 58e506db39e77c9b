"""Enterprise L2 links read back: bridges, VXLANs, VLANs, and the ports of our bridges.

The reader (state/reader.py) hands each link with our alias of a kind in
L2_KINDS to `l2_link`, and asks `ports` for the interfaces that are not ours
but are ports of a bridge that is: those are attached, never owned, so they
come back as `port` resources (and stay foreign by name: the plan never
creates or deletes them). Attributes as plan/desired_links.py writes them;
a VXLAN's `dev` is the name of its underlay interface (IFLA_VXLAN_LINK), None
when it has none.

`vlan_unavailable_reason` says whether this kernel can make 802.1Q
sub-interfaces at all, by trying in a throwaway namespace (the only sure
test: 8021q may be built in, a loadable module, or missing).
"""

from __future__ import annotations

import errno
import os
import threading

from hercc.resources.ids import InterfaceId, format_id
from hercc.resources.model import FORCES_NEW, Resource
from hercc.state.errors import StateError
from hercc.state.netlink import Link, NsSnapshot
from hercc.state.registry import is_owner_alias
from hercc.sysio.process import run

__all__ = ["L2_KINDS", "VLAN_UNSUPPORTED", "l2_link", "ports", "vlan_unavailable_reason"]

L2_KINDS = frozenset({"bridge", "vxlan", "vlan"})
VLAN_UNSUPPORTED = "the kernel has no 802.1Q VLAN support (8021q): Operation not supported"


def _names(snap: NsSnapshot) -> dict[int, str]:
    return {lk.index: lk.name for lk in snap.links}


def _bridge_address(ns: str, name: str | None) -> str | None:
    return None if name is None else f"bridge.{format_id(InterfaceId(ns, name))}"


def l2_link(link: Link, snap: NsSnapshot) -> Resource:
    """A bridge, VXLAN or VLAN of ours (link.kind in L2_KINDS) as its resource."""
    ns, names, data = snap.name, _names(snap), dict(link.data)
    ident = format_id(InterfaceId(ns, link.name))
    if link.kind == "bridge":
        return Resource("bridge", ident, {"up": link.up})
    if link.kind == "vxlan":
        master = names.get(link.master) if link.master is not None else None
        dev = data.get("IFLA_VXLAN_LINK")
        return Resource(
            "vxlan",
            ident,
            {
                "vni": data.get("IFLA_VXLAN_ID"),
                "local": data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6"),
                "remote": data.get("IFLA_VXLAN_GROUP") or data.get("IFLA_VXLAN_GROUP6"),
                "port": data.get("IFLA_VXLAN_PORT"),
                "mtu": link.mtu,
                "bridge": master,
                "up": link.up,
                "dev": names.get(dev) if dev else None,
            },
            forces_new=FORCES_NEW["vxlan"],
            parent=_bridge_address(ns, master),
        )
    parent = names.get(link.peer_index) if link.peer_index is not None else None
    return Resource(
        "vlan",
        ident,
        {"parent": parent, "vlan_id": data.get("IFLA_VLAN_ID"), "up": link.up},
        forces_new=FORCES_NEW["vlan"],
    )


def ports(snap: NsSnapshot, node: str) -> list[Resource]:
    """The interfaces that are not `node`'s but are ports of one of its bridges."""
    ours = {
        lk.index: lk.name
        for lk in snap.links
        if lk.kind == "bridge" and is_owner_alias(lk.alias, node)
    }
    return [
        Resource(
            "port",
            format_id(InterfaceId(snap.name, lk.name)),
            {"bridge": ours[lk.master]},
            parent=_bridge_address(snap.name, ours[lk.master]),
        )
        for lk in snap.links
        if lk.master in ours and not is_owner_alias(lk.alias, node)
    ]


def vlan_unavailable_reason() -> str | None:
    """Why 802.1Q sub-interfaces cannot be made here (EOPNOTSUPP: no 8021q), or None."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    ns = f"hercc-vlan-probe-{os.getpid()}-{threading.get_ident() % 100000}"
    run(["ip", "netns", "add", ns], timeout=10, error=StateError)
    try:
        with IPRoute(netns=ns, flags=0) as ipr:
            ipr.link("add", ifname="p0", kind="veth", peer="p1")
            try:
                ipr.link(
                    "add",
                    ifname="p0.2",
                    kind="vlan",
                    link=ipr.link_lookup(ifname="p0")[0],
                    vlan_id=2,
                )
            except NetlinkError as exc:
                if exc.code == errno.EOPNOTSUPP:
                    return VLAN_UNSUPPORTED
                raise StateError(f"cannot try a VLAN here: {os.strerror(exc.code)}") from None
        return None
    finally:
        run(["ip", "netns", "del", ns], timeout=10, error=StateError, check=False)
