"""WireGuard devices: read and change them through the kernel or through wireguard-go.

One interface, `WireGuardDriver`, two implementations:

  KernelWireGuard  the kernel module's generic netlink family (pyroute2 `WireGuard`);
                   usable only where the module is loaded (detected once, see
                   `kernel_unavailable_reason`).
  UapiWireGuard    wireguard-go's cross-platform UAPI text protocol on the unix
                   socket `<socket_dir>/<ifname>.sock` (`get=1` / `set=1`, keys in hex).

`AutoWireGuard` picks one per interface the way wg(8) does: the UAPI socket
when it exists, else the kernel. `default_driver()` builds it.

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

import base64
import errno as errno_mod
import functools
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hercc.resources.canonical import (
    KEY_LEN,
    canonical_allowed_ips,
    join_endpoint,
    key_bytes,
    split_endpoint,
)
from hercc.state.errors import StateError, WireGuardError, WireGuardUnavailable

__all__ = [
    "DEFAULT_SOCKET_DIR",
    "AutoWireGuard",
    "KernelWireGuard",
    "UapiTransport",
    "UapiWireGuard",
    "UnixSocketTransport",
    "WgDevice",
    "WgPeer",
    "WireGuardDriver",
    "default_driver",
    "kernel_unavailable_reason",
    "resolved_endpoint",
]

DEFAULT_SOCKET_DIR = Path("/var/run/wireguard")
DEFAULT_TIMEOUT = 5.0
_ZERO_KEY_HEX = "0" * (2 * KEY_LEN)
_ZERO_KEY_B64 = base64.b64encode(bytes(KEY_LEN)).decode()
MAX_ANSWER = 64 << 20  # bytes; 1,000 peers with one allowed IP each take about 400 kB


# --------------------------------------------------------------------------- data


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


# --------------------------------------------------------------------------- normalizing


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


def _b64_from_hex(text: str, what: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != KEY_LEN:
        raise WireGuardError(f"malformed {what} in the device's answer")
    return base64.b64encode(raw).decode()


def _errno_text(code: int) -> str:
    code = abs(code)
    name = errno_mod.errorcode.get(code)
    return f"errno {code} ({name}: {os.strerror(code)})" if name else f"errno {code}"


# --------------------------------------------------------------------------- UAPI


class UapiTransport(Protocol):
    """The one side effect of UapiWireGuard: one request, one whole answer."""

    def exchange(self, path: Path, request: bytes) -> bytes:
        """Send `request` to the socket at `path`; return the answer through `errno=N\\n\\n`."""
        ...


class UnixSocketTransport:
    """A fresh unix stream connection per request, with one deadline for all of it."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_answer: int = MAX_ANSWER) -> None:
        self.timeout = timeout
        self.max_answer = max_answer

    def exchange(self, path: Path, request: bytes) -> bytes:
        deadline = time.monotonic() + self.timeout
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:
            raise WireGuardError(f"cannot create a unix socket: {exc.strerror}") from None
        with sock:
            try:
                sock.settimeout(self.timeout)
                sock.connect(str(path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise WireGuardUnavailable(
                    f"no WireGuard UAPI socket at {path} (is wireguard-go running?)"
                ) from None
            except TimeoutError:
                raise WireGuardError(
                    f"{path}: connect timed out after {self.timeout:g} s"
                ) from None
            except OSError as exc:
                raise WireGuardError(f"{path}: cannot connect: {exc.strerror or exc}") from None
            answer = bytearray()
            try:
                sock.sendall(request)
                while not (answer.endswith(b"\n\n") and _last_line_is_errno(answer)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        raise WireGuardError(f"{path}: connection closed before the answer ended")
                    answer += chunk
                    if len(answer) > self.max_answer:
                        raise WireGuardError(f"{path}: answer larger than {self.max_answer} bytes")
            except TimeoutError:
                raise WireGuardError(
                    f"{path}: no complete answer within {self.timeout:g} s"
                ) from None
            except OSError as exc:
                raise WireGuardError(f"{path}: {exc.strerror or exc}") from None
            return bytes(answer)


def _last_line_is_errno(answer: bytearray) -> bool:
    start = answer.rfind(b"\n", 0, len(answer) - 2) + 1
    return answer.startswith(b"errno=", start)


def _parse_answer(answer: bytes, where: str) -> tuple[list[tuple[str, str]], int]:
    try:
        text = answer.decode("ascii")
    except UnicodeDecodeError:
        raise WireGuardError(f"{where}: the answer is not ASCII") from None
    pairs: list[tuple[str, str]] = []
    code: int | None = None
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise WireGuardError(f"{where}: malformed answer line (no '=')")
        if key == "errno":
            try:
                code = int(value)
            except ValueError:
                raise WireGuardError(f"{where}: malformed errno line") from None
        else:
            pairs.append((key, value))
    if code is None:
        raise WireGuardError(f"{where}: the answer has no errno line")
    return pairs, code


def _int(value: str, key: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise WireGuardError(f"{where}: malformed {key} in the answer") from None


def device_from_uapi(pairs: Sequence[tuple[str, str]], where: str = "device") -> WgDevice:
    """A WgDevice from the key=value pairs of a `get=1` answer (errno line removed)."""
    private_key: str | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    peers: dict[str, WgPeer] = {}
    current: dict[str, Any] | None = None
    current_key = ""

    def finish() -> None:
        if current is not None:
            peers[current_key] = WgPeer(
                endpoint=current["endpoint"],
                allowed_ips=canonical_allowed_ips(current["allowed_ips"]),
                keepalive=current["keepalive"] or None,
                preshared_key=current["preshared_key"],
                last_handshake=(
                    current["hs_sec"] + current["hs_nsec"] / 1e9 if current["hs_sec"] else None
                ),
                rx=current["rx"],
                tx=current["tx"],
            )

    for key, value in pairs:
        if key == "public_key":
            finish()
            current_key = _b64_from_hex(value, "public key")
            current = {
                "endpoint": None,
                "allowed_ips": [],
                "keepalive": 0,
                "preshared_key": None,
                "hs_sec": 0,
                "hs_nsec": 0,
                "rx": 0,
                "tx": 0,
            }
        elif current is None:
            if key == "private_key":
                private_key = None if value == _ZERO_KEY_HEX else _b64_from_hex(value, key)
            elif key == "listen_port":
                listen_port = _int(value, key, where)
            elif key == "fwmark":
                fwmark = _int(value, key, where) or None
        elif key == "allowed_ip":
            current["allowed_ips"].append(value)
        elif key == "endpoint":
            host, port = split_endpoint(value)
            current["endpoint"] = join_endpoint(host, port)
        elif key == "preshared_key":
            current["preshared_key"] = None if value == _ZERO_KEY_HEX else _b64_from_hex(value, key)
        elif key == "persistent_keepalive_interval":
            current["keepalive"] = _int(value, key, where)
        elif key == "last_handshake_time_sec":
            current["hs_sec"] = _int(value, key, where)
        elif key == "last_handshake_time_nsec":
            current["hs_nsec"] = _int(value, key, where)
        elif key == "rx_bytes":
            current["rx"] = _int(value, key, where)
        elif key == "tx_bytes":
            current["tx"] = _int(value, key, where)
        # protocol_version and keys added by later versions: ignored
    finish()
    return WgDevice(private_key=private_key, listen_port=listen_port, fwmark=fwmark, peers=peers)


def _peer_lines(
    pubkey: str,
    endpoint: str | None,
    allowed_ips: Iterable[str],
    keepalive: int | None,
    preshared_key: str | None,
) -> list[str]:
    lines = [f"public_key={key_bytes(pubkey, 'public key').hex()}"]
    psk = (
        _ZERO_KEY_HEX if preshared_key is None else key_bytes(preshared_key, "preshared key").hex()
    )
    lines.append(f"preshared_key={psk}")
    if endpoint is not None:
        lines.append(f"endpoint={resolved_endpoint(endpoint)}")
    if keepalive is not None and not 0 <= keepalive <= 65535:
        raise WireGuardError(f"invalid keepalive {keepalive}: 0..65535 seconds")
    lines.append(f"persistent_keepalive_interval={keepalive or 0}")
    lines.append("replace_allowed_ips=true")
    lines += [f"allowed_ip={ip}" for ip in canonical_allowed_ips(allowed_ips)]
    return lines


class UapiWireGuard:
    """wireguard-go (and every other userspace WireGuard) through its UAPI socket.

    `socket_dir` holds `<ifname>.sock`; it is the same in every network
    namespace, so a lab running instances in private mount namespaces passes
    where that namespace's directory is visible from here.
    """

    def __init__(
        self,
        socket_dir: str | os.PathLike[str] = DEFAULT_SOCKET_DIR,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: UapiTransport | None = None,
    ) -> None:
        self.socket_dir = Path(socket_dir)
        self.transport: UapiTransport = transport or UnixSocketTransport(timeout)

    def socket_path(self, ifname: str) -> Path:
        if not ifname or "/" in ifname or ifname in (".", ".."):
            raise WireGuardError(f"invalid interface name {ifname!r}")
        return self.socket_dir / f"{ifname}.sock"

    def has_socket(self, ifname: str) -> bool:
        return self.socket_path(ifname).exists()

    def _call(self, ifname: str, request: str, what: str) -> list[tuple[str, str]]:
        path = self.socket_path(ifname)
        answer = self.transport.exchange(path, request.encode("ascii"))
        pairs, code = _parse_answer(answer, f"WireGuard {ifname}")
        if code != 0:
            raise WireGuardError(f"WireGuard {ifname}: {what} refused: {_errno_text(code)}")
        return pairs

    def _set(self, ifname: str, lines: Sequence[str], what: str) -> None:
        self._call(ifname, "set=1\n" + "".join(f"{line}\n" for line in lines) + "\n", what)

    def read(self, ifname: str, *, netns: str | None = None) -> WgDevice:
        return device_from_uapi(self._call(ifname, "get=1\n\n", "get"), f"WireGuard {ifname}")

    def set_device(
        self,
        ifname: str,
        *,
        netns: str | None = None,
        private_key: str | None = None,
        listen_port: int | None = None,
        fwmark: int | None = None,
    ) -> None:
        lines = []
        if private_key is not None:
            lines.append(f"private_key={key_bytes(private_key, 'private key').hex()}")
        if listen_port is not None:
            if not 0 <= listen_port <= 65535:
                raise WireGuardError(f"invalid listen port {listen_port}")
            lines.append(f"listen_port={listen_port}")
        if fwmark is not None:
            lines.append(f"fwmark={fwmark}")
        if lines:
            self._set(ifname, lines, "setting the device")

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
        """Create or update a peer so that it has exactly these settings.

        UAPI cannot clear an endpoint: None leaves the current one (if any).
        """
        lines = _peer_lines(pubkey, endpoint, allowed_ips, keepalive, preshared_key)
        self._set(ifname, lines, f"setting peer {pubkey.strip()}")

    def remove_peer(self, ifname: str, pubkey: str, *, netns: str | None = None) -> None:
        """Remove a peer; a peer that is already gone is fine."""
        lines = [f"public_key={key_bytes(pubkey, 'public key').hex()}", "remove=true"]
        self._set(ifname, lines, f"removing peer {pubkey.strip()}")


# --------------------------------------------------------------------------- kernel


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
            raise WireGuardError(f"{where}: {_errno_text(exc.code)}") from None
        except FileNotFoundError:
            raise StateError(f"{where}: no network namespace {netns}") from None
        except OSError as exc:
            raise WireGuardError(f"{where}: {exc.strerror or exc}") from None
        try:
            return op(sock)
        except NetlinkError as exc:
            if exc.code == errno_mod.ENODEV:
                raise WireGuardUnavailable(f"{where}: no such WireGuard interface") from None
            raise WireGuardError(f"{where}: {what} failed: {_errno_text(exc.code)}") from None
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


# --------------------------------------------------------------------------- choosing


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
