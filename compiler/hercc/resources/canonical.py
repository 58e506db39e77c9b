"""The one written form of keys, endpoints, allowed IPs and an nft table's rule counts.

The desired state (plan/desired.py) writes its attributes in these forms and
the live reader (hercc.state) reads devices into them, so that equal values
compare equal. Pure: nothing is resolved here (hercc.state.wireguard resolves
a host name when it hands an endpoint to a device, and a plan resolves one
before it compares, through an injected resolver: plan/endpoints.py). Malformed input
raises InvalidValue, whose message never holds key material.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable, Mapping

from hercc.resources.errors import InvalidValue

__all__ = [
    "KEY_LEN",
    "canonical_allowed_ips",
    "canonical_endpoint",
    "canonical_nft_rules",
    "canonical_private_key",
    "is_host_name_endpoint",
    "join_endpoint",
    "key_bytes",
    "split_endpoint",
]

KEY_LEN = 32  # bytes of a Curve25519 key (and of a preshared key)


def key_bytes(key: str, what: str) -> bytes:
    """The raw bytes of a base64 key; `what` ("private key") names it in the error."""
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_LEN:
        raise InvalidValue(f"invalid {what}: not {KEY_LEN} bytes of base64")
    return raw


def canonical_private_key(key: str) -> str:
    """The key as a device stores it: Curve25519-clamped (wg genkey's keys already are).

    Both the kernel and wireguard-go clamp a private key when it is set, so a
    desired state must fingerprint this form to compare equal with a live one.
    """
    raw = bytearray(key_bytes(key, "private key"))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return base64.b64encode(bytes(raw)).decode()


def canonical_allowed_ips(items: Iterable[str]) -> list[str]:
    """Networks with host bits cleared, in `ipaddress` text form, unique, sorted as strings."""
    out = set()
    for item in items:
        try:
            out.add(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise InvalidValue(f"invalid allowed IP {item!r}") from None
    return sorted(out)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of `host:port` or `[ip6]:port`; the host without its brackets."""
    text = endpoint.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidValue(f"invalid endpoint {endpoint!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if any(c.isspace() for c in host) or "=" in host:
        raise InvalidValue(f"invalid endpoint {endpoint!r}")
    return host, int(port_text)


def join_endpoint(addr: str, port: int) -> str:
    """`ip:port` or `[ip6]:port` (an IPv6 zone dropped); ValueError when `addr` is no IP."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def canonical_endpoint(endpoint: str) -> str:
    """`ip:port` or `[ip6]:port` for an IP literal; a host name stays as written."""
    host, port = split_endpoint(endpoint)
    try:
        return join_endpoint(host, port)
    except ValueError:
        return f"{host}:{port}"


def is_host_name_endpoint(endpoint: str) -> bool:
    """True for `name:port`, False for an IP literal (which needs no resolving)."""
    host, port = split_endpoint(endpoint)
    try:
        join_endpoint(host, port)
    except ValueError:
        return True
    return False


def canonical_nft_rules(counts: Mapping[str, int]) -> str:
    """An nft table's rules per chain as one attribute: "forward=5 input=1 prerouting=2"."""
    return " ".join(f"{chain}={count}" for chain, count in sorted(counts.items()))
