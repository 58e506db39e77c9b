"""The byte layout of the programs' map entries and their verdicts, mirrored from the C.

Keep in step with dataplane/route.h (route keys and values, flags) and
dataplane/account.h (flow keys and values, counters). Map keys and values
are in the machine's byte order ("=" in struct), except addresses, which
are in network order as in the packet. tests/test_dataplane_programs.py
checks these layouts against the loaded programs.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hercc.dataplane.maps import KIND_LOCAL

__all__ = [
    "COUNTERS",
    "ROUTE_L3_DEVICE",
    "ROUTE_LOCAL",
    "TC_ACT_OK",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "XDP_ABORTED",
    "XDP_PASS",
    "XDP_REDIRECT",
    "Flow",
    "decode_flow",
    "route_entry",
]

# Verdicts: uapi/linux/pkt_cls.h and enum xdp_action.
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
XDP_ABORTED = 0
XDP_PASS = 2
XDP_REDIRECT = 4

ROUTE_LOCAL = 1
ROUTE_L3_DEVICE = 2

# enum counter, in index order.
COUNTERS = ("redirected", "passed", "dropped", "flows_created", "flows_failed")

_ROUTE4_KEY = struct.Struct("=I4s")
_ROUTE6_KEY = struct.Struct("=I16s")
_ROUTE_VALUE = struct.Struct("=II")
FLOW_KEY = struct.Struct("=16s16sHHIBBBx")
FLOW_VALUE = struct.Struct("=QQQQB7x")


def route_entry(route: Mapping[str, Any], ifindex: int, layer: int) -> tuple[int, bytes, bytes]:
    """One maps.json route as (IP version, LPM key, value) for routes4 or routes6.

    `ifindex` and `layer` are those of the route's interface (0 and 0 for a
    local route, which has none).
    """
    net = ipaddress.ip_network(route["prefix"])
    key_struct = _ROUTE4_KEY if net.version == 4 else _ROUTE6_KEY
    key = key_struct.pack(net.prefixlen, net.network_address.packed)
    flags = ROUTE_LOCAL if route["kind"] == KIND_LOCAL else 0
    if layer == 3:
        flags |= ROUTE_L3_DEVICE
    return net.version, key, _ROUTE_VALUE.pack(ifindex, flags)


@dataclass(frozen=True)
class Flow:
    """One flow, summed over CPUs."""

    family: int
    src: str
    dst: str
    sport: int
    dport: int  # ICMP: type << 8 | code
    proto: int
    ifindex: int
    direction: int  # 0 ingress, 1 egress
    packets: int  # wire segments
    bytes: int  # L3 bytes
    first_seen_ns: int  # CLOCK_MONOTONIC
    last_seen_ns: int
    tcp_flags: int


def _address(family: int, raw: bytes) -> str:
    return str(ipaddress.ip_address(raw[:4] if family == 4 else raw))


def decode_flow(key: bytes, per_cpu: Iterable[bytes]) -> Flow:
    """A flow from its key and its per-CPU values: sums, OR, earliest first, latest last."""
    saddr, daddr, sport, dport, ifindex, proto, family, direction = FLOW_KEY.unpack(key)
    packets = size = flags = last = 0
    first: int | None = None
    for raw in per_cpu:
        p, b, f, la, fl = FLOW_VALUE.unpack(raw)
        if not p:
            continue  # a CPU that never saw the flow
        packets += p
        size += b
        flags |= fl
        last = max(last, la)
        first = f if first is None else min(first, f)
    return Flow(
        family=family,
        src=_address(family, saddr),
        dst=_address(family, daddr),
        sport=sport,
        dport=dport,
        proto=proto,
        ifindex=ifindex,
        direction=direction,
        packets=packets,
        bytes=size,
        first_seen_ns=first or 0,
        last_seen_ns=last,
        tcp_flags=flags,
    )
