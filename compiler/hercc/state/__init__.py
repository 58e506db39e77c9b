"""Live state: what Hercules owns on a node, read from the kernel and WireGuard.

wireguard  WireGuardDriver: KernelWireGuard (generic netlink) or UapiWireGuard
           (wireguard-go's UAPI socket), picked per interface by AutoWireGuard
netlink    StateReader: namespaces, interfaces, addresses, routes, sysctls and
           peers as Resources (hercc.resources), plus the foreign names next to them
registry   OwnedRegistry: the namespaces Hercules created (STATE_DIR/<node>.json)
errors     the exception hierarchy (all OperationError)
"""

from hercc.state.errors import RegistryError, StateError, WireGuardError, WireGuardUnavailable
from hercc.state.netlink import (
    LiveState,
    Netlink,
    NsSnapshot,
    ProcSysctl,
    PyrouteNetlink,
    StateReader,
    Sysctl,
)
from hercc.state.registry import OwnedRegistry, is_owner_alias, owner_alias
from hercc.state.wireguard import (
    AutoWireGuard,
    KernelWireGuard,
    UapiWireGuard,
    WgDevice,
    WgPeer,
    WireGuardDriver,
    default_driver,
    kernel_unavailable_reason,
)

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
