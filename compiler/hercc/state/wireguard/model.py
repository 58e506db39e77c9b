"""What a WireGuard device holds, and the one interface both of its drivers implement.

`WgDevice` and `WgPeer` are a device as a driver reads it, in the forms of
hercc.resources.canonical (the ones the desired state is written in);
`WireGuardDriver` is what the planner and apply need from a device. Kept
apart from the drivers, so that the state reader and the executor name a
device without a transport, and so that both drivers share the same
`resolved_endpoint` and errno text.
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from hercc.resources.canonical import join_endpoint, split_endpoint
from hercc.state.errors import WireGuardError

__all__ = ["WgDevice", "WgPeer", "WireGuardDriver", "errno_text", "resolved_endpoint"]


@dataclass(frozen=True)
class WgPeer:
    """One peer as the device reports it.

    `keepalive` is None when persistent keepalive is off (0); `preshared_key`
    None when there is none (all zeros); `last_handshake` is seconds since the
    epoch, None before the first handshake.
    """

    endpoint: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    keepalive: int | None = None
    preshared_key: str | None = field(default=None, repr=False)
    last_handshake: float | None = None
    rx: int = 0
    tx: int = 0


@dataclass(frozen=True)
class WgDevice:
    """A device: its key (base64, None when unset), port, fwmark (None when 0), peers."""

    private_key: str | None = field(default=None, repr=False)
    listen_port: int | None = None
    fwmark: int | None = None
    peers: dict[str, WgPeer] = field(default_factory=dict)  # base64 public key -> peer


class WireGuardDriver(Protocol):
    """What the planner and apply need from a WireGuard device.

    `netns` names the network namespace the interface lives in; the kernel
    driver needs it (generic netlink is per namespace), the UAPI driver does
    not (its socket is a file).
    """

    def read(self, ifname: str, *, netns: str | None = None) -> WgDevice: ...

    def set_device(
        self,
        ifname: str,
        *,
        netns: str | None = None,
        private_key: str | None = None,
        listen_port: int | None = None,
        fwmark: int | None = None,
    ) -> None: ...

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
    ) -> None: ...

    def remove_peer(self, ifname: str, pubkey: str, *, netns: str | None = None) -> None: ...


def resolved_endpoint(endpoint: str) -> str:
    """canonical_endpoint, with a host name resolved as wg(8) does before it sets a peer.

    The first address getaddrinfo returns.
    """
    host, port = split_endpoint(endpoint)
    try:
        return join_endpoint(host, port)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise WireGuardError(f"cannot resolve endpoint {endpoint!r}: {exc}") from None
    if not infos:
        raise WireGuardError(f"cannot resolve endpoint {endpoint!r}: no address")
    return join_endpoint(str(infos[0][4][0]), port)


def errno_text(code: int) -> str:
    """An errno for a message: its number, name and text."""
    code = abs(code)
    name = errno_mod.errorcode.get(code)
    return f"errno {code} ({name}: {os.strerror(code)})" if name else f"errno {code}"
