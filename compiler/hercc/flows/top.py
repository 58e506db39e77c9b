"""Top talkers: the flows of a map snapshot ranked, with their rates since the previous one.

`hercc flows top` (hercc.cli.flows) takes a snapshot of the node's flow maps
(`records.merge`: one cumulative FlowCounters per key) every interval and
shows `top_talkers`. The first screen has no rates and ranks by what the map
holds; later ones rank by the rate over the interval, then by the totals. A
flow whose counters went down since (the exporter deleted it, the LRU
evicted it and it came back) counts what it holds now as its delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hercc.flows.records import FlowCounters, FlowKey

__all__ = ["SORTS", "Talker", "top_talkers"]

SORTS = ("bytes", "packets")


@dataclass(frozen=True, slots=True)
class Talker:
    key: FlowKey
    packets: int  # what the map holds for the flow
    octets: int
    pps: float | None  # since the previous snapshot; None on the first
    bps: float | None  # bits per second


def _delta(now: FlowCounters, before: FlowCounters | None) -> tuple[int, int]:
    if before is None or now.packets < before.packets or now.first_ns != before.first_ns:
        return now.packets, now.octets
    return now.packets - before.packets, now.octets - before.octets


def top_talkers(
    current: Mapping[FlowKey, FlowCounters],
    previous: Mapping[FlowKey, FlowCounters] | None,
    elapsed_s: float,
    *,
    sort: str = "bytes",
    limit: int = 20,
) -> list[Talker]:
    """The `limit` first flows of `current` by `sort` (the module docstring)."""
    if sort not in SORTS:
        raise ValueError(f"sort by {' or '.join(SORTS)}, not {sort!r}")
    rows: list[Talker] = []
    for key, now in current.items():
        pps = bps = None
        if previous is not None and elapsed_s > 0:
            packets, octets = _delta(now, previous.get(key))
            pps, bps = packets / elapsed_s, octets * 8 / elapsed_s
        rows.append(Talker(key, now.packets, now.octets, pps, bps))

    def rank(t: Talker) -> tuple[float, int, FlowKey]:
        rate = (t.bps if sort == "bytes" else t.pps) or 0.0
        total = t.octets if sort == "bytes" else t.packets
        return (-rate, -total, t.key)

    return sorted(rows, key=rank)[:limit]
