"""Live state: what Hercules owns on a node, read from the kernel and WireGuard.

wireguard  WireGuardDriver (wireguard/model.py): KernelWireGuard (kernel.py, generic
           netlink) or UapiWireGuard (uapi.py, wireguard-go's UAPI socket), picked
           per interface by AutoWireGuard
reader     StateReader: namespaces, interfaces, addresses, routes, sysctls, peers
           and nftables tables as Resources (hercc.resources), plus the foreign
           names next to them
netlink    Netlink: a namespace's links, addresses and routes as plain data (pyroute2)
sysctl     Sysctl: the values under /proc/sys inside a namespace
nftables   Nft: a namespace's nftables tables (ours by their comment), read with nft
probes     the gateway tunnels' liveness probes: how one runs, the running ones (PID
           file, /proc)
registry   OwnedRegistry: the namespaces Hercules created (STATE_DIR/<node>.json)
errors     the exception hierarchy (all OperationError)
"""

from hercc.state.errors import RegistryError, StateError, WireGuardError, WireGuardUnavailable
from hercc.state.netlink import Netlink, NsSnapshot, PyrouteNetlink
from hercc.state.reader import LiveState, StateReader
from hercc.state.registry import OwnedRegistry, is_owner_alias, owner_alias
from hercc.state.sysctl import ProcSysctl, Sysctl
from hercc.state.wireguard import AutoWireGuard, default_driver
from hercc.state.wireguard.kernel import KernelWireGuard, kernel_unavailable_reason
from hercc.state.wireguard.model import WgDevice, WgPeer, WireGuardDriver
from hercc.state.wireguard.uapi import UapiWireGuard

__all__ = [
    "AutoWireGuard",
    "KernelWireGuard",
    "LiveState",
    "Netlink",
    "NsSnapshot",
    "OwnedRegistry",
    "ProcSysctl",
    "PyrouteNetlink",
    "RegistryError",
    "StateError",
    "StateReader",
    "Sysctl",
    "UapiWireGuard",
    "WgDevice",
    "WgPeer",
    "WireGuardDriver",
    "WireGuardError",
    "WireGuardUnavailable",
    "default_driver",
    "is_owner_alias",
    "kernel_unavailable_reason",
    "owner_alias",
]
