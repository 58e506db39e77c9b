"""The programs under dataplane/, their entry points, and their C text for BCC.

BCC rewrites map accesses (`flows.lookup(&key)`) only in the main file it is
given, not in headers it includes, so `program_text` expands the local
`#include "..."` lines of a program into one text, the generated header
among them; system includes (`<uapi/...>`) stay. The sources themselves
stay split and readable.

The C sources are found through `sources`, a link in this package to the
repository's top-level dataplane/ (like hercc/schemas), installed with the
package as package data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ACCOUNT_TC_L3",
    "FASTPATH_TC_AFTER_XDP",
    "FASTPATH_TC_ETH",
    "FASTPATH_TC_L3",
    "FASTPATH_XDP",
    "HEADER_NAME",
    "PROGRAMS",
    "SOURCE_DIR",
    "TC",
    "XDP",
    "Program",
    "program_text",
]

HEADER_NAME = "hercules_config.h"  # the generated header every program includes
SOURCE_DIR = Path(__file__).resolve().parent / "sources"

FASTPATH_TC_ETH = "fastpath_tc_eth"  # TC on Ethernet devices (workload veths)
FASTPATH_TC_L3 = "fastpath_tc_l3"  # TC on layer-3 devices (WireGuard over TUN)
# TC behind XDP on a veth: forwards what XDP passed (a layer-3 egress), never accounts
FASTPATH_TC_AFTER_XDP = "fastpath_tc_after_xdp"
ACCOUNT_TC_L3 = "account_tc_l3"  # TC, accounting only: gateway tunnels, which nftables filters
FASTPATH_XDP = "fastpath_xdp"  # XDP on Ethernet devices

_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.MULTILINE)


@dataclass(frozen=True)
class Program:
    """One C file: one hook, one or more entry points (functions BCC loads)."""

    hook: str  # tc | xdp
    source: str
    entries: tuple[str, ...]


TC = Program(
    "tc", "fastpath_tc.c", (FASTPATH_TC_ETH, FASTPATH_TC_L3, ACCOUNT_TC_L3, FASTPATH_TC_AFTER_XDP)
)
XDP = Program("xdp", "fastpath_xdp.c", (FASTPATH_XDP,))
PROGRAMS = {p.hook: p for p in (TC, XDP)}


def program_text(program: Program, header: str, read: Callable[[str], str]) -> str:
    """The program's C with its local includes expanded, each once; `read(name)` is a
    source file's text, and `header` is hercules_config.h's."""
    seen: set[str] = set()

    def expand(text: str) -> str:
        def include(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in seen:
                return ""
            seen.add(name)
            return expand(header if name == HEADER_NAME else read(name))

        return _INCLUDE.sub(include, text)

    return expand(read(program.source))
