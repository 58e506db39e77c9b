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
from collections.abc import Mapping
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

# enum counter, in index order (flows_deleted: written by the exporter, never by a program).
COUNTERS = ("redirected", "passed", "dropped", "flows_created", "flows_failed", "flows_deleted")

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
