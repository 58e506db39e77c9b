"""`hercc lab flows`: a collector's records as a table per 5-tuple, or nfdump's JSON as it is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lab is imported when a lab command runs
    from hercc.lab.collector_flows import CollectorFlows, FlowRow

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
HEADINGS = ("src", "sport", "dst", "dport", "proto", "packets", "bytes", "first", "last")
_RIGHT = {"sport", "dport", "packets", "bytes"}


def _cells(r: FlowRow) -> tuple[str, ...]:
    proto = PROTOCOLS.get(r.proto, str(r.proto))
    return (
        r.src,
        str(r.src_port),
        r.dst,
        str(r.dst_port),
        proto,
        str(r.packets),
        str(r.bytes),
        r.first,
        r.last,
    )


def render_table(rows: Sequence[FlowRow]) -> list[str]:
    """The rows under their headings, in columns; numbers to the right."""
    table = [HEADINGS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADINGS))]
    lines = []
    for line in table:
        cells = [
            cell.rjust(w) if head in _RIGHT else cell.ljust(w)
            for cell, w, head in zip(line, widths, HEADINGS, strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _title(f: CollectorFlows) -> str:
    s = f.stats
    state = "nfcapd running" if f.running else "nfcapd NOT RUNNING: only what it wrote before"
    return (
        f"collector {f.collector.name} ({state}): {s.get('Flows', 0)} records, "
        f"{s.get('Packets', 0)} packets, {s.get('Bytes', 0)} bytes; "
        f"sequence failures {f.sequence_failures}, bad packets {f.bad_packets}"
    )


def render_flows(flows: Sequence[CollectorFlows]) -> str:
    """Per collector: its totals and losses, then one row per 5-tuple (records summed)."""
    from hercc.lab.collector_flows import summarise

    parts = []
    for f in flows:
        rows = summarise(f.records)
        lines = [_title(f)]
        lines += render_table(rows) if rows else ["  (no records yet)"]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def flows_json(lab: str, flows: Sequence[CollectorFlows]) -> str:
    """nfdump's records as it printed them, with its totals, per collector."""
    data = {
        "lab": lab,
        "collectors": [
            {
                "collector": f.collector.name,
                "namespace": f.collector.ns,
                "running": f.running,
                "stats": f.stats,
                "sequence_failures": f.sequence_failures,
                "bad_packets": f.bad_packets,
                "records": list(f.records),
            }
            for f in flows
        ],
    }
    return json.dumps(data, indent=2) + "\n"
