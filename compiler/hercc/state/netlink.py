"""Netlink: a network namespace's links, addresses and routes as plain data.

`Netlink` is the boundary the state reader (hercc.state.reader) reads a node
through: the named namespaces, and a snapshot of one (`NsSnapshot` of
`Link`, `Address` and `Route`: the fields of the kernel's messages that
decide ownership). `PyrouteNetlink` is the real one, pyroute2
`IPRoute(netns=...)`. Kept apart from the reader, so that pyroute2's
messages become plain data in one place and the ownership rules are tested
on fakes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hercc.resources.gateway_naming import netns_arg
from hercc.state.errors import StateError

__all__ = [
    "Address",
    "Link",
    "Netlink",
    "NsSnapshot",
    "PyrouteNetlink",
    "Route",
]

NETNS_DIR = Path("/run/netns")
IFF_UP = 0x1
IFA_F_PERMANENT = 0x80
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
INFO_DATA = frozenset(
    {
        "IFLA_VXLAN_ID",
        "IFLA_VXLAN_LOCAL",
        "IFLA_VXLAN_LOCAL6",
        "IFLA_VXLAN_GROUP",
        "IFLA_VXLAN_GROUP6",
        "IFLA_VXLAN_PORT",
        "IFLA_VXLAN_LINK",
        "IFLA_VLAN_ID",
    }
)


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str | None = None  # IFLA_INFO_KIND: "veth", "wireguard", "tun", ... None for lo
    alias: str | None = None
    mtu: int = 1500
    up: bool = False
    peer_index: int | None = None  # IFLA_LINK: a veth's peer, in peer_netns
    peer_netns: str | None = None  # the peer's namespace name; None when unnamed or unknown
    master: int | None = None  # IFLA_MASTER: the bridge it is a port of
    # IFLA_INFO_DATA of a VXLAN or VLAN, the attributes state/links.py reads (INFO_DATA)
    data: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Address:
    index: int
    cidr: str  # "10.0.0.1/24"
    proto: int | None = None  # IFA_PROTO (kernel 6.3+)
    flags: int = IFA_F_PERMANENT


@dataclass(frozen=True)
class Route:
    dst: str  # "10.0.0.0/24", "0.0.0.0/0"
    oif: int | None = None
    gateway: str | None = None
    proto: int = 3
    table: int = RT_TABLE_MAIN
    type: int = RTN_UNICAST
    priority: int = 0
    multipath: bool = False


@dataclass(frozen=True)
class NsSnapshot:
    name: str
    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()


class Netlink(Protocol):
    def namespaces(self) -> list[str]:
        """The names of every named network namespace."""
        ...

    def snapshot(self, ns: str) -> NsSnapshot | None:
        """Links, addresses and routes of a namespace; None when it does not exist."""
        ...


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


class PyrouteNetlink:
    """Netlink through pyroute2 0.9: `IPRoute(netns=NAME, flags=0)` never creates a namespace."""

    def __init__(self, netns_dir: str | os.PathLike[str] = NETNS_DIR) -> None:
        self.netns_dir = Path(netns_dir)

    def namespaces(self) -> list[str]:
        try:
            return sorted(p.name for p in self.netns_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"cannot list {self.netns_dir}: {exc.strerror or exc}") from None

    def snapshot(self, ns: str) -> NsSnapshot | None:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]
        from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

        host = netns_arg(ns) is None  # HOST_NETNS: the host's own namespace
        if not host and not (self.netns_dir / ns).exists():
            return None
        try:
            ipr = IPRoute() if host else IPRoute(netns=ns, flags=0)
        except FileNotFoundError:
            return None
        except (OSError, NetlinkError) as exc:
            raise StateError(f"cannot open netlink in namespace {ns}: {exc}") from None
        try:
            with ipr:
                links = list(ipr.get_links())
                addrs = list(ipr.get_addr())
                routes = list(ipr.get_routes(table=RT_TABLE_MAIN))
                nsids = (
                    self._nsids(ipr, ns)
                    if any(_attr(m, "IFLA_LINK_NETNSID") is not None for m in links)
                    else {}
                )
        except (OSError, NetlinkError) as exc:
            raise StateError(f"cannot read namespace {ns} over netlink: {exc}") from None
        return NsSnapshot(
            name=ns,
            links=tuple(self._link(m, ns, nsids) for m in links),
            addresses=tuple(a for a in (self._address(m) for m in addrs) if a is not None),
            routes=tuple(r for r in (self._route(m) for m in routes) if r is not None),
        )

    def _nsids(self, ipr: Any, ns: str) -> dict[int, str]:
        """nsid (as `ns` numbers other namespaces) -> namespace name."""
        out: dict[int, str] = {}
        for name in self.namespaces():
            try:
                fd = os.open(self.netns_dir / name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                answer = ipr.get_netnsid(fd=fd)
            except Exception:  # a namespace that vanished or refuses: unnamed peer
                continue
            finally:
                os.close(fd)
            nsid = answer.get("nsid") if isinstance(answer, dict) else None
            if isinstance(nsid, int) and nsid >= 0:
                out[nsid] = name
        return out

    @staticmethod
    def _link(msg: Any, ns: str, nsids: Mapping[int, str]) -> Link:
        info = _attr(msg, "IFLA_LINKINFO")
        kind = _attr(info, "IFLA_INFO_KIND") if info is not None else None
        nsid = _attr(msg, "IFLA_LINK_NETNSID")
        peer_index = _attr(msg, "IFLA_LINK")
        peer_netns: str | None = ns if nsid is None else nsids.get(nsid)
        data = _attr(info, "IFLA_INFO_DATA") if info is not None else None
        fields = () if data is None or isinstance(data, (str, bytes)) else data["attrs"]
        return Link(
            index=msg["index"],
            name=_attr(msg, "IFLA_IFNAME"),
            kind=kind,
            alias=_attr(msg, "IFLA_IFALIAS"),
            mtu=_attr(msg, "IFLA_MTU") or 0,
            up=bool(msg["flags"] & IFF_UP),
            peer_index=peer_index if peer_index else None,
            peer_netns=peer_netns if peer_index else None,
            master=_attr(msg, "IFLA_MASTER") or None,
            data=tuple(sorted((k, v) for k, v in fields if k in INFO_DATA)),
        )

    @staticmethod
    def _address(msg: Any) -> Address | None:
        ip = _attr(msg, "IFA_LOCAL") or _attr(msg, "IFA_ADDRESS")
        if ip is None:
            return None
        flags = _attr(msg, "IFA_FLAGS")
        return Address(
            index=msg["index"],
            cidr=f"{ip}/{msg['prefixlen']}",
            proto=_attr(msg, "IFA_PROTO"),
            flags=msg["flags"] if flags is None else flags,
        )

    @staticmethod
    def _route(msg: Any) -> Route | None:
        dst = _attr(msg, "RTA_DST")
        if dst is None:
            dst = "0.0.0.0" if msg["family"] == 2 else "::"
        return Route(
            dst=f"{dst}/{msg['dst_len']}",
            oif=_attr(msg, "RTA_OIF"),
            gateway=_attr(msg, "RTA_GATEWAY"),
            proto=msg["proto"],
            table=_attr(msg, "RTA_TABLE") or msg["table"],
            type=msg["type"],
            priority=_attr(msg, "RTA_PRIORITY") or 0,
            multipath=_attr(msg, "RTA_MULTIPATH") is not None,
        )
