"""The sysctls Hercules manages, and the rule that a default value is no resource.

A sysctl resource is a value set away from its default: the desired state
never holds a default value, the live reader leaves a value at its default
out, and deleting one writes the default back. So "absent" and "default" are
one.
"""

from __future__ import annotations

__all__ = ["FORWARD4", "FORWARD6", "SYSCTL_DEFAULTS", "sysctl_default"]

FORWARD4 = "net.ipv4.ip_forward"
FORWARD6 = "net.ipv6.conf.all.forwarding"
# The sysctls Hercules manages and their defaults (in a new network namespace).
SYSCTL_DEFAULTS = {FORWARD4: "0", FORWARD6: "0"}


def sysctl_default(key: str) -> str:
    """The value a sysctl goes back to when its resource is deleted ("0": off)."""
    return SYSCTL_DEFAULTS.get(key, "0")
