"""KernelWireGuard: the kernel module through its generic netlink family.

pyroute2's `WireGuard` socket, opened per operation in the interface's
network namespace (generic netlink is per namespace); usable only where the
module is loaded, which `kernel_unavailable_reason` finds out once. The
socket is made by a `GenlFactory`, so tests swap in a fake. Separate from
the UAPI driver: the two share nothing but the model.
"""

from __future__ import annotations

import base64
import errno as errno_mod
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from hercc.resources.canonical import (
    KEY_LEN,
    canonical_allowed_ips,
    join_endpoint,
    key_bytes,
    split_endpoint,
)
from hercc.resources.gateway_naming import netns_arg
from hercc.state.errors import StateError, WireGuardError, WireGuardUnavailable
from hercc.state.wireguard.model import WgDevice, WgPeer, errno_text, resolved_endpoint

__all__ = [
    "GenlFactory",
    "GenlWireGuard",
    "KernelWireGuard",
    "device_from_genl",
    "genl_peer",
    "kernel_unavailable_reason",
]

_ZERO_KEY_B64 = base64.b64encode(bytes(KEY_LEN)).decode()


class GenlWireGuard(Protocol):
    """The part of pyroute2's `WireGuard` socket that KernelWireGuard uses."""

    def info(self, interface: str) -> Any: ...

    def set(
        self,
        interface: str,
        listen_port: int | None = None,
        fwmark: int | None = None,
        private_key: str | None = None,
        peer: Mapping[str, Any] | None = None,
    ) -> Any: ...

    def close(self) -> None: ...


GenlFactory = Callable[[str | None], GenlWireGuard]  # netns (None: ours) -> socket


def _pyroute2_factory(netns: str | None) -> GenlWireGuard:
    from pyroute2 import WireGuard  # type: ignore[import-untyped]

    # flags=0: never create the namespace as a side effect
    netns = netns_arg(netns)  # HOST_NETNS: the host's own
    sock: GenlWireGuard = WireGuard() if netns is None else WireGuard(netns=netns, flags=0)
    return sock


@functools.cache
def kernel_unavailable_reason() -> str | None:
    """Why the kernel's WireGuard genl family cannot be used here (None: it can). Cached."""
    try:
        from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
    except ImportError:
        return "pyroute2 is not installed"
    try:
        sock = _pyroute2_factory(None)
    except NetlinkError as exc:
        return f"no wireguard kernel module (generic netlink family missing: error {exc.code})"
    except OSError as exc:
        return f"no wireguard kernel module ({exc.strerror or exc})"
    sock.close()
    return None


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def device_from_genl(messages: Iterable[Any]) -> WgDevice:
    """A WgDevice from the messages of a WG_CMD_GET_DEVICE dump.

    A large device comes in several messages; a peer may continue in the next
    message (same public key, more allowed IPs).
    """
    private_key: str | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    raw: dict[str, dict[str, Any]] = {}
    for i, msg in enumerate(messages):
        if i == 0:
            key = _attr(msg, "WGDEVICE_A_PRIVATE_KEY")
            private_key = None if key is None else _text(key)
            if private_key == _ZERO_KEY_B64:
                private_key = None
            listen_port = _attr(msg, "WGDEVICE_A_LISTEN_PORT")
            fwmark = _attr(msg, "WGDEVICE_A_FWMARK") or None
        for peer in _attr(msg, "WGDEVICE_A_PEERS") or ():
            pub = _text(_attr(peer, "WGPEER_A_PUBLIC_KEY"))
            entry = raw.setdefault(pub, {"allowed_ips": []})
            endpoint = _attr(peer, "WGPEER_A_ENDPOINT")
            if endpoint is not None and endpoint.get("port"):
                entry["endpoint"] = join_endpoint(endpoint["addr"], endpoint["port"])
            psk = _attr(peer, "WGPEER_A_PRESHARED_KEY")
            if psk is not None and _text(psk) != _ZERO_KEY_B64:
                entry["preshared_key"] = _text(psk)
            for name, attr in (
                ("keepalive", "WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL"),
                ("rx", "WGPEER_A_RX_BYTES"),
                ("tx", "WGPEER_A_TX_BYTES"),
            ):
                value = _attr(peer, attr)
                if value is not None:
                    entry[name] = value
            handshake = _attr(peer, "WGPEER_A_LAST_HANDSHAKE_TIME")
            if handshake is not None and handshake.get("tv_sec"):
                entry["last_handshake"] = handshake["tv_sec"] + handshake["tv_nsec"] / 1e9
            for allowed in _attr(peer, "WGPEER_A_ALLOWEDIPS") or ():
                if allowed.get("addr"):
                    entry["allowed_ips"].append(allowed["addr"])
    peers = {
        pub: WgPeer(
            endpoint=e.get("endpoint"),
            allowed_ips=canonical_allowed_ips(e["allowed_ips"]),
            keepalive=e.get("keepalive") or None,
            preshared_key=e.get("preshared_key"),
            last_handshake=e.get("last_handshake"),
            rx=e.get("rx", 0),
            tx=e.get("tx", 0),
        )
        for pub, e in raw.items()
    }
    return WgDevice(private_key=private_key, listen_port=listen_port, fwmark=fwmark, peers=peers)


class KernelWireGuard:
    """The kernel module through pyroute2's generic netlink `WireGuard` socket."""

    def __init__(self, factory: GenlFactory | None = None) -> None:
        self.factory: GenlFactory = factory or _pyroute2_factory

    @staticmethod
    def available() -> bool:
        return kernel_unavailable_reason() is None

    def _run(self, ifname: str, netns: str | None, what: str, op: Callable[[Any], Any]) -> Any:
        from pyroute2.netlink.exceptions import NetlinkError

        where = f"WireGuard {ifname}" + (f" in {netns}" if netns else "")
        try:
            sock = self.factory(netns)
        except NetlinkError as exc:
            if exc.code in (errno_mod.ENOENT, errno_mod.EOPNOTSUPP):
                raise WireGuardUnavailable(f"{where}: no wireguard kernel module") from None
            raise WireGuardError(f"{where}: {errno_text(exc.code)}") from None
        except FileNotFoundError:
            raise StateError(f"{where}: no network namespace {netns}") from None
        except OSError as exc:
            raise WireGuardError(f"{where}: {exc.strerror or exc}") from None
        try:
            return op(sock)
        except NetlinkError as exc:
            if exc.code == errno_mod.ENODEV:
                raise WireGuardUnavailable(f"{where}: no such WireGuard interface") from None
            raise WireGuardError(f"{where}: {what} failed: {errno_text(exc.code)}") from None
        except (ValueError, TypeError):
            raise WireGuardError(f"{where}: {what}: invalid arguments") from None
        finally:
            sock.close()

    def read(self, ifname: str, *, netns: str | None = None) -> WgDevice:
        return self._run(  # type: ignore[no-any-return]
            ifname, netns, "get", lambda s: device_from_genl(s.info(ifname))
        )

    def set_device(
        self,
        ifname: str,
        *,
        netns: str | None = None,
        private_key: str | None = None,
        listen_port: int | None = None,
        fwmark: int | None = None,
    ) -> None:
        if private_key is not None:
            key_bytes(private_key, "private key")
            private_key = private_key.strip()
        self._run(
            ifname,
            netns,
            "setting the device",
            lambda s: s.set(
                ifname, listen_port=listen_port, fwmark=fwmark, private_key=private_key
            ),
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
        self._run(
            ifname,
            netns,
            f"setting peer {pubkey.strip()}",
            lambda s: s.set(
                ifname,
                peer=genl_peer(pubkey, endpoint, allowed_ips, keepalive, preshared_key),
            ),
        )

    def remove_peer(self, ifname: str, pubkey: str, *, netns: str | None = None) -> None:
        key_bytes(pubkey, "public key")
        peer = {"public_key": pubkey.strip(), "remove": True}
        self._run(
            ifname, netns, f"removing peer {pubkey.strip()}", lambda s: s.set(ifname, peer=peer)
        )


def genl_peer(
    pubkey: str,
    endpoint: str | None,
    allowed_ips: Iterable[str],
    keepalive: int | None,
    preshared_key: str | None,
) -> dict[str, Any]:
    """The `peer` argument of pyroute2's WireGuard.set for exactly these settings."""
    key_bytes(pubkey, "public key")
    peer: dict[str, Any] = {
        "public_key": pubkey.strip(),
        "preshared_key": _ZERO_KEY_B64,
        "persistent_keepalive": keepalive or 0,
        "replace_allowed_ips": True,
        "allowed_ips": canonical_allowed_ips(allowed_ips),
    }
    if preshared_key is not None:
        key_bytes(preshared_key, "preshared key")
        peer["preshared_key"] = preshared_key.strip()
    if endpoint is not None:
        host, port = split_endpoint(resolved_endpoint(endpoint))
        peer["endpoint_addr"] = host
        peer["endpoint_port"] = port
    return peer
