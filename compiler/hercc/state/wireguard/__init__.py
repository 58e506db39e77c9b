"""WireGuard devices: read and change them through the kernel or through wireguard-go.

One interface, `WireGuardDriver` (model.py, with the `WgDevice` it reads),
two implementations:

  KernelWireGuard  (kernel.py) the kernel module's generic netlink family (pyroute2
                   `WireGuard`); usable only where the module is loaded (detected
                   once, see `kernel_unavailable_reason`).
  UapiWireGuard    (uapi.py) wireguard-go's cross-platform UAPI text protocol on the
                   unix socket `<socket_dir>/<ifname>.sock` (`get=1` / `set=1`, keys
                   in hex).

`AutoWireGuard`, here, picks one per interface the way wg(8) does: the UAPI
socket when it exists, else the kernel. `default_driver()` builds it.

Keys cross this interface as base64 text, as wg(8) prints them. They never
appear in messages or reprs; compare them through
`hercc.resources.fingerprints.fingerprint`. Every socket or netlink operation
is bounded by a timeout, and every failure is a `WireGuardError` (or
`WireGuardUnavailable` when the device cannot be reached at all), except
a malformed key, endpoint or allowed IP: an InvalidValue (hercc.resources).

Devices are read into the forms of hercc.resources.canonical, the ones the
desired state is written in; `resolved_endpoint` resolves a host name before
an endpoint is handed to a device.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from hercc.state.errors import WireGuardUnavailable
from hercc.state.wireguard.kernel import KernelWireGuard, kernel_unavailable_reason
from hercc.state.wireguard.model import WgDevice, WireGuardDriver
from hercc.state.wireguard.uapi import DEFAULT_SOCKET_DIR, DEFAULT_TIMEOUT, UapiWireGuard

__all__ = ["AutoWireGuard", "default_driver"]


class AutoWireGuard:
    """Per interface, like wg(8): its UAPI socket if there is one, else the kernel."""

    def __init__(
        self, uapi: UapiWireGuard | None = None, kernel: KernelWireGuard | None = None
    ) -> None:
        self.uapi = uapi or UapiWireGuard()
        self.kernel = kernel or KernelWireGuard()

    def driver_for(self, ifname: str) -> WireGuardDriver:
        if self.uapi.has_socket(ifname):
            return self.uapi
        reason = kernel_unavailable_reason()
        if reason is None:
            return self.kernel
        raise WireGuardUnavailable(
            f"WireGuard {ifname}: no UAPI socket at {self.uapi.socket_path(ifname)} and {reason}"
        )

    def read(self, ifname: str, *, netns: str | None = None) -> WgDevice:
        return self.driver_for(ifname).read(ifname, netns=netns)

    def set_device(
        self,
        ifname: str,
        *,
        netns: str | None = None,
        private_key: str | None = None,
        listen_port: int | None = None,
        fwmark: int | None = None,
    ) -> None:
        self.driver_for(ifname).set_device(
            ifname, netns=netns, private_key=private_key, listen_port=listen_port, fwmark=fwmark
        )

    def set_peer(
        self,
        ifname: str,
        pubkey: str,
        endpoint: str | None = None,
        allowed_ips: Iterable[str] = (),
        keepalive: int | None = None,
        preshared_key: str | None = None,
        *,
        netns: str | None = None,
    ) -> None:
        self.driver_for(ifname).set_peer(
            ifname, pubkey, endpoint, allowed_ips, keepalive, preshared_key, netns=netns
        )

    def remove_peer(self, ifname: str, pubkey: str, *, netns: str | None = None) -> None:
        self.driver_for(ifname).remove_peer(ifname, pubkey, netns=netns)


def default_driver(
    socket_dir: str | os.PathLike[str] = DEFAULT_SOCKET_DIR, *, timeout: float = DEFAULT_TIMEOUT
) -> AutoWireGuard:
    return AutoWireGuard(UapiWireGuard(socket_dir, timeout=timeout), KernelWireGuard())
