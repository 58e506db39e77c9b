"""The errors of hercc.state, in one place.

    OperationError (hercc.diagnostics)
    └── StateError                 live state could not be read or changed
        ├── RegistryError          the ownership file is unreadable or unwritable
        ├── WireGuardError         a WireGuard device refused or failed an operation
        │   └── WireGuardUnavailable   no way to talk to that device at all
        │                              (no UAPI socket, no kernel module)
        └── DataplaneError         an eBPF program or map could not be built, loaded or run
            └── BccUnavailable     no BCC, no kernel headers, or no BPF in this kernel

Messages name the interface, namespace or file and the cause; they never
contain private or preshared keys (public keys may appear).
"""

from __future__ import annotations

from hercc.diagnostics import OperationError


class StateError(OperationError):
    """Live state could not be read or changed."""


class RegistryError(StateError):
    """The file listing what Hercules owns on a node is unreadable or unwritable."""


class WireGuardError(StateError):
    """A WireGuard device refused or failed an operation."""


class WireGuardUnavailable(WireGuardError):
    """No driver can reach this WireGuard device (no UAPI socket, no kernel module)."""


class DataplaneError(StateError):
    """An eBPF program or map of the dataplane could not be compiled, loaded, filled or run."""


class BccUnavailable(DataplaneError):
    """BCC, its kernel headers, or the kernel's BPF support is missing here."""
