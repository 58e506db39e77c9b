"""`hercc flows top`: the top talkers as a table, and the screen it is drawn on."""

from __future__ import annotations

from collections.abc import Sequence

from hercc.flows.records import FlowKey
from hercc.flows.top import Talker

# ANSI: cursor home, clear the screen (what `top` and `watch` do between refreshes)
CLEAR = "\x1b[H\x1b[2J"
_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
_HEAD = ("SOURCE", "DESTINATION", "PROTO", "IF", "PACKETS", "BYTES", "PKT/S", "BIT/S")


def _endpoint(address: object, port: int, key: FlowKey) -> str:
    host = f"[{address}]" if key.ipv6 else str(address)
    return host if key.protocol in (1, 58) else f"{host}:{port}"


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}T"


def render_top(node: str, talkers: Sequence[Talker], flows: int, when: str) -> str:
    """One screen: a title line, then one row per flow under aligned headings."""
    rows = [
        (
            _endpoint(t.key.src, t.key.src_port, t.key),
            _endpoint(t.key.dst, t.key.dst_port, t.key),
            _PROTOCOLS.get(t.key.protocol, str(t.key.protocol)),
            str(t.key.ifindex),
            str(t.packets),
            str(t.octets),
            _si(t.pps),
            _si(t.bps),
        )
        for t in talkers
    ]
    widths = [max(len(r[i]) for r in [_HEAD, *rows]) for i in range(len(_HEAD))]
    left = 3  # addresses and protocol are left-aligned, the numbers right-aligned

    def line(row: Sequence[str]) -> str:
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    title = f"hercc flows top: node {node}, {flows} flows in the maps, {when}"
    return "\n".join([title, "", line(_HEAD), *(line(r) for r in rows)]) + "\n"
