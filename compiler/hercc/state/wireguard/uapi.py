"""UapiWireGuard: wireguard-go (or any userspace WireGuard) through its UAPI socket.

The cross-platform UAPI text protocol on the unix socket
`<socket_dir>/<ifname>.sock`: `get=1` / `set=1` requests, `key=value` lines,
keys in hex, an `errno=N` line at the end of every answer. Its one side
effect is `UapiTransport.exchange` (UnixSocketTransport: one connection per
request, one deadline for all of it), so tests put a fake server behind it.
Separate from the kernel driver: the two share nothing but the model.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from hercc.resources.canonical import (
    KEY_LEN,
    canonical_allowed_ips,
    join_endpoint,
    key_bytes,
    split_endpoint,
)
from hercc.state.errors import WireGuardError, WireGuardUnavailable
from hercc.state.wireguard.model import WgDevice, WgPeer, errno_text, resolved_endpoint

__all__ = [
    "DEFAULT_SOCKET_DIR",
    "UapiTransport",
    "UapiWireGuard",
    "UnixSocketTransport",
    "device_from_uapi",
]

DEFAULT_SOCKET_DIR = Path("/var/run/wireguard")
DEFAULT_TIMEOUT = 5.0
_ZERO_KEY_HEX = "0" * (2 * KEY_LEN)
MAX_ANSWER = 64 << 20  # bytes; 1,000 peers with one allowed IP each take about 400 kB


def _b64_from_hex(text: str, what: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != KEY_LEN:
        raise WireGuardError(f"malformed {what} in the device's answer")
    return base64.b64encode(raw).decode()


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
            raise WireGuardError(f"WireGuard {ifname}: {what} refused: {errno_text(code)}")
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
