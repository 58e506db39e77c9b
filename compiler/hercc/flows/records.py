"""Flow records as the dataplane hands them over, and the clocks they are timed by.

The accounting map is a per-CPU LRU hash: one `FlowKey` and, per CPU, one
`FlowCounters` that only ever grows while the entry lives. `merge` sums the
CPUs; everything downstream (the flow table, the encoders) sees one
cumulative `FlowCounters` per key. A reader that keeps the map between
polls hands over only what changed (`MapChanges`).

The exporter builds a `FlowCounters` for every entry that changed in every
poll and a `FlowRecord` for every record: both are named tuples, which are
built about three times faster than frozen dataclasses and compared in C.
A `FlowKey` is built once in a flow's life but looked up every poll, so it
keeps its hash (ipaddress hashes its addresses in Python, each time).

Times in the map come from `bpf_ktime_get_ns`, CLOCK_MONOTONIC nanoseconds.
`WallClock` turns them into Unix milliseconds with one offset, taken once
when the exporter starts (`WallClock.now`): every record of a run is then
timed on one consistent scale, and a step of the wall clock (NTP, an
operator) during the run neither reorders flows nor makes a flow end before
it began. The price is that a run's times drift with the monotonic clock
against true time (ppm); a restarted exporter takes a fresh offset.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NS_PER_MS = 1_000_000


class Direction(enum.IntEnum):
    """Where the packet was seen; the values are IPFIX flowDirection's (IE 61)."""

    INGRESS = 0
    EGRESS = 1


@dataclass(frozen=True, slots=True, order=True)
class FlowKey:
    """One flow: the 5-tuple, the interface (ifindex) and the direction.

    Both addresses have the same family; ports are 0 for protocols without them.
    """

    src: IPAddress
    dst: IPAddress
    src_port: int
    dst_port: int
    protocol: int
    ifindex: int
    direction: Direction
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ports = (self.src_port, self.dst_port, self.protocol, self.ifindex, self.direction)
        object.__setattr__(self, "_hash", hash((int(self.src), int(self.dst), *ports)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def ipv6(self) -> bool:
        return self.src.version == 6


class FlowCounters(NamedTuple):
    """A flow's counters since its map entry was created (one CPU's, or all summed).

    packets and octets (L3 bytes) only grow; first_ns and last_ns are the
    monotonic times of the first and the last packet; tcp_flags is the OR of
    every packet's TCP flags (0 for other protocols).
    """

    packets: int
    octets: int
    first_ns: int
    last_ns: int
    tcp_flags: int


def sum_cpus(per_cpu: Iterable[FlowCounters]) -> FlowCounters | None:
    """One entry's counters over all CPUs; None when no CPU saw a packet.

    A CPU that never saw the flow holds zeros, its times included, so it is
    left out of the times rather than pulling first_ns to 0. (A loop, not
    sums of generators: it runs for every entry that moved, and most flows
    live on one CPU.)
    """
    total: FlowCounters | None = None
    for c in per_cpu:
        if c.packets == 0:
            continue
        if total is None:
            total = c
            continue
        total = FlowCounters(
            packets=total.packets + c.packets,
            octets=total.octets + c.octets,
            first_ns=min(total.first_ns, c.first_ns),
            last_ns=max(total.last_ns, c.last_ns),
            tcp_flags=total.tcp_flags | c.tcp_flags,
        )
    return total


@dataclass(frozen=True, slots=True)
class MapChanges:
    """What a read of the map found since the previous read: the entries that are new or
    whose counters moved (summed over CPUs), and the keys no longer there (the LRU evicted
    them, or their object was replaced). Keys the reader deleted itself are not `gone`."""

    changed: dict[FlowKey, FlowCounters]
    gone: list[FlowKey]


def merge(entries: Iterable[tuple[FlowKey, Sequence[FlowCounters]]]) -> dict[FlowKey, FlowCounters]:
    """A snapshot of the map: each key's counters summed over the CPUs (empty entries left out)."""
    snapshot: dict[FlowKey, FlowCounters] = {}
    for key, per_cpu in entries:
        total = sum_cpus(per_cpu)
        if total is not None:
            snapshot[key] = total
    return snapshot


@dataclass(frozen=True, slots=True)
class WallClock:
    """Monotonic nanoseconds to Unix milliseconds, by one fixed offset (see the module's doc)."""

    offset_ns: int  # Unix time minus monotonic time, in ns

    @classmethod
    def now(cls) -> WallClock:
        """The offset between the two clocks right now, read back to back."""
        return cls(time.time_ns() - time.monotonic_ns())

    def unix_ms(self, monotonic_ns: int) -> int:
        return (monotonic_ns + self.offset_ns) // NS_PER_MS


class EndReason(enum.IntEnum):
    """Why a record was exported; the values are IPFIX flowEndReason's (IE 136)."""

    IDLE_TIMEOUT = 1
    ACTIVE_TIMEOUT = 2
    FORCED_END = 4  # the exporter stopped and flushed what it held
    LACK_OF_RESOURCES = 5  # the map's LRU evicted the entry


class FlowRecord(NamedTuple):
    """What one exported record says: the counts since the flow's previous record.

    first_ns and last_ns are monotonic, like the map's; the encoders convert them.
    """

    key: FlowKey
    packets: int
    octets: int
    first_ns: int
    last_ns: int
    tcp_flags: int
    reason: EndReason
