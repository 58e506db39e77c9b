"""Typed values: each parser turns one syntax Value into a Python value, or
records a diagnostic at the value's position and returns None.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hercc import codes
from hercc.diagnostics import Collector
from hercc.syntax import Value

T = TypeVar("T")
Parser = Callable[[Value, Collector], T | None]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}\Z")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?\Z")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")  # ASCII digits: \d would take "٣"
_DURATION_DIGITS = 15  # more is out of every range (and int() refuses thousands of digits)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}\Z")


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # an IP address (v6 without brackets) or a DNS name
    port: int | None

    def render(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{port}"


def _text(v: Value, diags: Collector, what: str, *, string_ok: bool = False) -> str | None:
    if v.kind == "atom" or v.kind == "scalar" or (string_ok and v.kind == "string"):
        return v.text
    diags.error(codes.ARGUMENTS, f"expected {what}, found {_describe(v)}", v.span)
    return None


def _describe(v: Value) -> str:
    return {
        "atom": f'"{v.text}"',
        "string": "a string",
        "call": f"{v.text}(...)",
        "list": "a list",
        "scalar": f'"{v.text}"',
    }[v.kind]


def name(v: Value, diags: Collector) -> str | None:
    text = _text(v, diags, "a name")
    if text is None:
        return None
    if not _NAME.match(text):
        diags.error(
            codes.BAD_VALUE,
            f'invalid name "{text}"',
            v.span,
            "names start with a letter and hold letters, digits, - and _ (at most 63)",
        )
        return None
    return text


def string(v: Value, diags: Collector) -> str | None:
    if v.kind in ("string", "scalar"):
        return v.text
    diags.error(
        codes.ARGUMENTS, f"expected a string in double quotes, found {_describe(v)}", v.span
    )
    return None


def hostname(v: Value, diags: Collector) -> str | None:
    text = _text(v, diags, "a DNS name", string_ok=True)
    if text is None:
        return None
    if not _HOSTNAME.match(text) or text.replace(".", "").isdigit():
        diags.error(codes.BAD_VALUE, f'invalid DNS name "{text}"', v.span)
        return None
    return text.rstrip(".").lower()


def ifname(v: Value, diags: Collector) -> str | None:
    text = _text(v, diags, "an interface name")
    if text is None:
        return None
    if not _IFNAME.match(text) or text in (".", ".."):
        diags.error(
            codes.BAD_VALUE,
            f'invalid interface name "{text}"',
            v.span,
            "Linux interface names have 1 to 15 characters: letters, digits, _ . -",
        )
        return None
    return text


def _whole_number(text: str, lo: int, hi: int) -> int | tuple[str, str | None]:
    """`text` as a number in lo..hi, or (why not, hint). ASCII digits only, and no
    leading zero: `wg` reads 051820 as decimal, YAML 1.1 reads 051720 as octal."""
    if not text.isascii() or not text.isdigit():
        return "expected a whole number", None
    if len(text) > 1 and text[0] == "0":
        hint = f"write {text.lstrip('0') or '0'}: YAML reads 0-prefixed numbers as octal"
        return "a leading zero is ambiguous", hint
    # Compare lengths first: int() refuses texts of thousands of digits.
    if len(text) > len(str(hi)) or not lo <= int(text) <= hi:
        return f"must be {lo}..{hi}", None
    return int(text)


def integer(lo: int, hi: int, what: str = "number", code: str = codes.BAD_VALUE) -> Parser[int]:
    def parse(v: Value, diags: Collector) -> int | None:
        text = _text(v, diags, f"a {what}")
        if text is None:
            return None
        n = _whole_number(text, lo, hi)
        if isinstance(n, tuple):
            reason, hint = n
            shown = text if text.isascii() and text.isdigit() else f'"{text}"'
            diags.error(code, f"invalid {what} {shown}: {reason}", v.span, hint)
            return None
        return n

    return parse


port = integer(1, 65535, "port", codes.BAD_PORT)
vni = integer(1, 16_777_215, "VNI", codes.BAD_VNI)
vlan_id = integer(1, 4094, "VLAN id", codes.BAD_VLAN)


def choice(*options: str) -> Parser[str]:
    def parse(v: Value, diags: Collector) -> str | None:
        text = _text(v, diags, " or ".join(options))
        if text is None:
            return None
        if text not in options:
            diags.error(
                codes.BAD_VALUE,
                f'invalid value "{text}": expected {" or ".join(options)}',
                v.span,
            )
            return None
        return text

    return parse


def on_off(v: Value, diags: Collector) -> bool | None:
    text = choice("on", "off")(v, diags)
    return None if text is None else text == "on"


def duration(what: str, lo_ms: int, hi_ms: int, why: str, *, seconds: bool = False) -> Parser[int]:
    """Durations as Go writes them (500ms, 25s, 1m30s, 2h), in milliseconds, lo_ms..hi_ms.

    `why` is the hint for a value out of range: the limit of the tool that uses it.
    With `seconds`, the value must be whole seconds (WireGuard and IPFIX count in them).
    """

    def parse(v: Value, diags: Collector) -> int | None:
        text = _text(v, diags, "a duration")
        if text is None:
            return None
        total = _duration_ms(text)
        if total is None:
            diags.error(
                codes.BAD_DURATION,
                f'invalid duration "{text}"',
                v.span,
                "write a number and a unit: 500ms, 25s, 5m, 1h (or combined, as 1m30s)",
            )
            return None
        if not lo_ms <= total <= hi_ms:
            diags.error(
                codes.BAD_DURATION,
                f'invalid {what} "{text}": must be {_render_ms(lo_ms)}..{_render_ms(hi_ms)}',
                v.span,
                why,
            )
            return None
        if seconds and total % 1000:
            diags.error(
                codes.BAD_DURATION,
                f'invalid {what} "{text}": must be whole seconds',
                v.span,
                f"{why}; write {_render_ms(total - total % 1000 + 1000)}",
            )
            return None
        return total

    return parse


def _duration_ms(text: str) -> int | None:
    pos, total = 0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        digits = m.group(1)
        number = int(digits) if len(digits) <= _DURATION_DIGITS else 10**_DURATION_DIGITS
        total += number * _UNIT_MS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None


def _render_ms(ms: int) -> str:
    """A duration as `duration` reads it: 0s, 500ms, 25s, 18h12m15s."""
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)


keepalive = duration(
    "keepalive",
    0,
    65_535_000,
    "WireGuard's persistent keepalive is 1s..65535s (18h12m15s), or 0s for off",
    seconds=True,
)
flow_timeout = duration(
    "flow timeout",
    1000,
    65_535_000,
    "IPFIX and NetFlow v9 export flow timeouts as 16-bit seconds",
    seconds=True,
)
health_interval = duration(
    "health interval",
    1000,
    86_400_000,
    "health checks run at most once a second and at least once a day",
)


def prefix_length(v: Value, diags: Collector) -> int | None:
    text = _text(v, diags, "a prefix length such as /24")
    if text is None:
        return None
    digits = text[1:] if text.startswith("/") else ""
    if not re.fullmatch("[0-9]{1,3}", digits) or int(digits) > 128:
        diags.error(codes.BAD_CIDR, f'invalid prefix length "{text}"', v.span, "write it as /24")
        return None
    return int(digits)


def _cidr(v: Value, diags: Collector, version: int | None) -> IPNetwork | None:
    text = _text(v, diags, "a CIDR")
    if text is None:
        return None
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        diags.error(codes.BAD_CIDR, f'invalid CIDR "{text}"', v.span)
        return None
    if "/" not in text:
        diags.error(codes.BAD_CIDR, f'invalid CIDR "{text}": missing /prefix', v.span)
        return None
    if net.network_address != ipaddress.ip_interface(text).ip:
        diags.error(
            codes.BAD_CIDR,
            f'invalid CIDR "{text}": host bits are set',
            v.span,
            f'did you mean "{net}"?',
        )
        return None
    if version is not None and net.version != version:
        diags.error(codes.BAD_CIDR, f'invalid CIDR "{text}": expected IPv{version}', v.span)
        return None
    return net


def cidr(v: Value, diags: Collector) -> IPNetwork | None:
    return _cidr(v, diags, None)


def cidr4(v: Value, diags: Collector) -> IPNetwork | None:
    return _cidr(v, diags, 4)


def cidr6(v: Value, diags: Collector) -> IPNetwork | None:
    return _cidr(v, diags, 6)


def interface(v: Value, diags: Collector) -> IPInterface | None:
    """An address with its prefix, as on an interface: 172.30.42.1/24."""
    text = _text(v, diags, "an address with a prefix")
    if text is None:
        return None
    try:
        if "/" not in text:
            raise ValueError
        return ipaddress.ip_interface(text)
    except ValueError:
        diags.error(
            codes.BAD_CIDR, f'invalid interface address "{text}"', v.span, "e.g. 172.30.42.1/24"
        )
        return None


def _address(v: Value, diags: Collector, version: int | None) -> IPAddress | None:
    text = _text(v, diags, "an IP address")
    if text is None:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        diags.error(codes.BAD_ADDRESS, f'invalid IP address "{text}"', v.span)
        return None
    if version is not None and addr.version != version:
        diags.error(codes.BAD_ADDRESS, f'invalid address "{text}": expected IPv{version}', v.span)
        return None
    return addr


def address(v: Value, diags: Collector) -> IPAddress | None:
    return _address(v, diags, None)


def address4(v: Value, diags: Collector) -> IPAddress | None:
    return _address(v, diags, 4)


def address6(v: Value, diags: Collector) -> IPAddress | None:
    return _address(v, diags, 6)


def endpoint(v: Value, diags: Collector) -> Endpoint | None:
    """host, host:port, an IPv6 address, or [v6]:port."""
    text = _text(v, diags, "an endpoint (host or host:port)")
    if text is None:
        return None
    host, port_text = text, None
    if text.startswith("["):
        close = text.find("]")
        rest = text[close + 1 :] if close > 0 else "x"
        if close < 0 or (rest and not rest.startswith(":")):
            return _bad_endpoint(v, text, diags)
        host, port_text = text[1:close], (rest[1:] if rest else None)
        if ":" not in host:
            return _bad_endpoint(v, text, diags)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
        host = str(addr)
    except ValueError:
        if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
            return _bad_endpoint(v, text, diags)
        host = host.lower()
    number: int | None = None
    if port_text is not None:
        n = _whole_number(port_text, 1, 65535)  # the rules of `port`, leading zeros included
        if isinstance(n, tuple):
            reason, hint = n
            diags.error(
                codes.BAD_PORT,
                f'invalid port "{port_text}" in endpoint "{text}": {reason}',
                v.span,
                hint,
            )
            return None
        number = n
    return Endpoint(host, number)


def _bad_endpoint(v: Value, text: str, diags: Collector) -> Endpoint | None:
    diags.error(
        codes.BAD_ENDPOINT,
        f'invalid endpoint "{text}"',
        v.span,
        "write host, host:port, or [IPv6]:port",
    )
    return None


def wg_key(v: Value, diags: Collector) -> str | None:
    """A WireGuard public key: 32 bytes in base64."""
    text = string(v, diags)
    if text is None:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        diags.error(codes.BAD_VALUE, "invalid WireGuard key: expected 32 bytes in base64", v.span)
        return None
    return text


def secret_ref(v: Value, diags: Collector) -> str | None:
    """secret("name"): a secret resolved at apply time; only its name is kept."""
    if v.kind != "call" or v.text != "secret":
        diags.error(
            codes.ARGUMENTS,
            f'expected secret("name"), found {_describe(v)}',
            v.span,
            'secrets are never written in a spec: refer to one as secret("name")',
        )
        return None
    ref = v.items[0]
    if not _NAME.match(ref.text.replace(".", "-").replace("/", "-")):
        diags.error(codes.BAD_VALUE, f'invalid secret name "{ref.text}"', ref.span)
        return None
    return ref.text
