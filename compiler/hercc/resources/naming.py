"""Names on a node: one IFNAMSIZ, one `ifname()`, and `Naming`.

Linux's IFNAMSIZ is 16 bytes including the terminating NUL, so an interface
name has at most IFNAME_MAX = 15 characters. Every interface name Hercules
makes goes through `ifname` (a network's WireGuard interface, `wg_ifname`; a
workload's veth end, `Naming.veth_host`), and the lab checks its own names
against IFNAME_MAX (hercc.lab.topology).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = [
    "GATEWAY_IFNAME_PREFIX",
    "IFNAME_MAX",
    "IFNAMSIZ",
    "WG_IFNAME_PREFIX",
    "WORKLOAD_IFNAME",
    "Naming",
    "bridge_ifname",
    "gateway_ifname",
    "ifname",
    "vlan_ifname",
    "vxlan_ifname",
    "wg_ifname",
]

IFNAMSIZ = 16  # Linux's, counting the terminating NUL
IFNAME_MAX = IFNAMSIZ - 1  # the longest interface name: 15 characters
WG_IFNAME_PREFIX = "wg-"
GATEWAY_IFNAME_PREFIX = "gw-"
WORKLOAD_IFNAME = "eth0"  # the workload's end of its veth pair (Naming.workload_ifname)


def ifname(prefix: str, name: str, hashed_prefix: str | None = None) -> str:
    """prefix + name when it fits IFNAME_MAX characters; else cut, or hashed.

    Without `hashed_prefix` a longer name is cut to fit. With one, it becomes
    hashed_prefix + the start of `name` + 8 hex digits of its sha256: with
    "hv-" and "hv." (workload names cannot contain "."), a short name and a
    hashed one never meet, and two long names share a hashed name only if
    they share 4 characters and 32 bits of sha256.
    """
    full = prefix + name
    if len(full) <= IFNAME_MAX:
        return full
    if hashed_prefix is None:
        return full[:IFNAME_MAX]
    digest = hashlib.sha256(name.encode()).hexdigest()
    room = IFNAME_MAX - len(hashed_prefix) - 8
    return hashed_prefix + name[:room] + digest[:8]


def wg_ifname(network: str) -> str:
    """The WireGuard interface of a network on every node: "wg-" + network, cut to fit.

    Two networks whose names share their first 12 characters get the same
    interface name; detecting that collision is left to the spec checks.
    """
    return ifname(WG_IFNAME_PREFIX, network)


def gateway_ifname(gateway: str) -> str:
    """A node's WireGuard tunnel to a gateway: "gw-" + gateway, or hashed when too long.

    Gateway names cannot contain ".", so a hashed "gw." name never meets a plain one.
    """
    return ifname(GATEWAY_IFNAME_PREFIX, gateway, "gw.")


@dataclass(frozen=True)
class Naming:
    """How networks and workloads map to namespace and interface names on a node."""

    netns_prefix: str = "herc-"
    workload_netns_prefix: str = "herc-w-"
    veth_prefix: str = "hv-"
    veth_hashed_prefix: str = "hv."
    workload_ifname: str = WORKLOAD_IFNAME
    # where the enterprise links (VXLAN, VLAN, bridges) live: None for the host's own
    # namespace (gateway_naming.HOST_NETNS); a lab node's underlay namespace in the lab
    links_netns: str | None = None

    def netns(self, network: str) -> str:
        return self.netns_prefix + network

    def wg_ifname(self, network: str) -> str:
        return wg_ifname(network)

    def gw_ifname(self, gateway: str) -> str:
        """A node's WireGuard tunnel to `gateway`, in the namespace of the network it serves."""
        return gateway_ifname(gateway)

    def workload_netns(self, workload: str) -> str:
        return self.workload_netns_prefix + workload

    def veth_host(self, workload: str) -> str:
        """The network-side end of a workload's veth pair: at most IFNAME_MAX characters."""
        return ifname(self.veth_prefix, workload, self.veth_hashed_prefix)

    def veth_workload(self, workload: str) -> str:
        return self.workload_ifname


def vxlan_ifname(name: str) -> str:
    """An enterprise VXLAN's interface: "vx-" + name, or hashed ("vx.") when too long."""
    return ifname("vx-", name, "vx.")


def vlan_ifname(name: str) -> str:
    """An enterprise VLAN's interface: "vl-" + name, or hashed ("vl.") when too long."""
    return ifname("vl-", name, "vl.")


def bridge_ifname(name: str) -> str:
    """An enterprise bridge's interface: "br-" + name, or hashed ("br.") when too long."""
    return ifname("br-", name, "br.")
