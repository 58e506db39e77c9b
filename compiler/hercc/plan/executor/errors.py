"""The errors of the system executor, in one place.

    OperationError (hercc.diagnostics)
    └── ExecutorError              a change to the node failed
        ├── CommandFailed          a command or netlink request refused or timed out
        ├── WireGuardStartError    wireguard-go did not start in time
        ├── SecretUnavailable      a key the plan needs is not available
        └── InjectedFailure        the HERCC_FAIL_AT test hook

Kept apart because the System layer, the wireguard-go processes and the
executor all raise them. Messages never contain key material.
"""

from __future__ import annotations

from hercc.diagnostics import OperationError

__all__ = [
    "CommandFailed",
    "ExecutorError",
    "InjectedFailure",
    "SecretUnavailable",
    "WireGuardStartError",
]


class ExecutorError(OperationError):
    """A change to the node failed. Messages never contain key material."""


class CommandFailed(ExecutorError):
    """A command or a netlink request was refused or timed out."""


class WireGuardStartError(ExecutorError):
    """wireguard-go did not start or did not create its interface in time."""


class SecretUnavailable(ExecutorError):
    """A private or preshared key the plan needs is not available."""


class InjectedFailure(ExecutorError):
    """The HERCC_FAIL_AT test hook."""
