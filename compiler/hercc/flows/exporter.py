"""The export loop: map reads -> the flow table -> the encoder -> every collector.

Everything with a side effect comes in from outside: the source of the
map's changes (`FlowSource`), the senders (one per collector), the
monotonic clock and the wait between polls. `Exporter.poll` does one
round; `Exporter.run` polls until told to stop, then `stop`s.

`run` does not read the map every poll_interval_ms: it wakes up every
interval and polls when the table has a flow due (`FlowTable.due_ns`: a
deadline, or the time a flow not seen yet could be due) or the source asks
for it (`needs_read`: a map filling up, an object replaced). Records leave
at the same intervals as with a read every time, and a quiet map costs
nothing. `Snapshots` makes a source of a callable that returns the whole
map (a BCC table, a test's fake); it asks for a read every time.

An exporter given `MapAccess` (hercc.state.flow_export's, over the pinned
maps) also deletes from the map, so that the LRU evicts no live flow: after
each poll, the flows exported and idle, and those `crowded` says a map too
full to keep (exported early, flowEndReason 5), each deleted with its final
counters (`FlowTable.retire`). `stop` empties the map (`drain`) and sends
every count it held, so a successor starts from nothing it would count twice.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hercc import ir
from hercc.flows.ipfix import IpfixEncoder
from hercc.flows.netflow_v9 import NetflowV9Encoder
from hercc.flows.packing import Datagram, Encoder, ExportPolicy
from hercc.flows.records import (
    EndReason,
    FlowCounters,
    FlowKey,
    FlowRecord,
    MapChanges,
    WallClock,
    merge,
)  # fmt: skip
from hercc.flows.sender import Sender, UdpSender
from hercc.flows.table import FlowTable, TableStats

Entries = Iterable[tuple[FlowKey, Sequence[FlowCounters]]]


class FlowSource(Protocol):
    """Where the exporter reads the map."""

    def read(self) -> MapChanges:
        """What changed in the map since the previous read (the first: everything)."""
        ...

    def needs_read(self) -> bool:
        """Whether the map may hold what a poll must not wait for, however far the next
        timeout is (a map filling up, an object replaced)."""
        ...


class MapAccess(Protocol):
    """What an exporter may do to the map besides reading it."""

    def take(self, keys: Sequence[FlowKey]) -> Mapping[FlowKey, FlowCounters]:
        """Delete these entries; their final counters (an entry gone already is left out)."""
        ...

    def crowded(self) -> Sequence[FlowKey]:
        """Flows to export and delete now, so the LRU does not evict live ones."""
        ...

    def drain(self) -> dict[FlowKey, FlowCounters]:
        """Delete every entry; the final counters of each."""
        ...


class Snapshots:
    """A FlowSource over a callable that returns the whole map, per CPU, each time (a BCC
    table, a test's fake): each read's changes since the previous one."""

    def __init__(self, entries: Callable[[], Entries]) -> None:
        self._entries = entries
        self._last: dict[FlowKey, FlowCounters] = {}

    def read(self) -> MapChanges:
        snapshot = merge(self._entries())
        last, self._last = self._last, snapshot
        changed = {k: c for k, c in snapshot.items() if last.get(k) != c}
        return MapChanges(changed, [k for k in last if k not in snapshot])

    def needs_read(self) -> bool:
        return True  # it cannot tell how full the map is


ENCODERS: dict[str, type[Encoder]] = {"v9": NetflowV9Encoder, "ipfix": IpfixEncoder}


def domain_id(node: str) -> int:
    """The v9 source id / IPFIX observation domain id of a node: CRC-32 of its name.

    Stable across builds and spec edits, and different per node, so a
    collector keeps each node's sequence numbers and templates apart.
    """
    return zlib.crc32(node.encode())


@dataclass(frozen=True, slots=True)
class ExportConfig:
    protocol: str  # "v9" or "ipfix"
    active_timeout_ms: int
    idle_timeout_ms: int
    sampling: int
    domain_id: int
    collectors: tuple[str, ...] = ()  # "host:port"; the IR holds one
    poll_interval_ms: int = 1000
    policy: ExportPolicy = field(default_factory=ExportPolicy)

    @classmethod
    def from_ir(cls, netflow: ir.Netflow, *, node: str) -> ExportConfig:
        return cls(
            protocol=netflow.protocol,
            active_timeout_ms=netflow.active_timeout_ms,
            idle_timeout_ms=netflow.idle_timeout_ms,
            sampling=netflow.sampling,
            domain_id=domain_id(node),
            collectors=(netflow.collector,),
        )

    def attrs(self) -> dict[str, Any]:
        """What the spec chose, as the `exporter` resource's attributes (JSON)."""
        return {
            "protocol": self.protocol,
            "collectors": list(self.collectors),
            "active_timeout_ms": self.active_timeout_ms,
            "idle_timeout_ms": self.idle_timeout_ms,
            "sampling": self.sampling,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], *, node: str) -> ExportConfig:
        """The config of `attrs` (`ExportConfig.attrs`); ValueError when they are not such."""
        try:
            config = cls(
                protocol=str(attrs["protocol"]),
                active_timeout_ms=int(attrs["active_timeout_ms"]),
                idle_timeout_ms=int(attrs["idle_timeout_ms"]),
                sampling=int(attrs["sampling"]),
                domain_id=domain_id(node),
                collectors=tuple(str(c) for c in attrs["collectors"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an export config: {exc}") from None
        if config.protocol not in ENCODERS or config.sampling < 1 or not config.collectors:
            raise ValueError(f"not an export config: {attrs}")
        return config

    def open_senders(self) -> list[Sender]:
        """A UDP sender to each collector (the caller closes them)."""
        return [UdpSender(collector) for collector in self.collectors]


@dataclass(frozen=True, slots=True)
class PollResult:
    records: tuple[FlowRecord, ...]
    datagrams: tuple[Datagram, ...]
    table: TableStats


class Exporter:
    def __init__(
        self,
        config: ExportConfig,
        source: FlowSource,
        senders: Sequence[Sender],
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        wall: WallClock | None = None,
        maps: MapAccess | None = None,
    ) -> None:
        self.config = config
        self._source = source
        self._maps = maps
        self._senders = tuple(senders)
        self._clock = clock
        self.table = FlowTable(
            active_timeout_ms=config.active_timeout_ms,
            idle_timeout_ms=config.idle_timeout_ms,
            sampling=config.sampling,
        )
        self.encoder = ENCODERS[config.protocol](
            domain_id=config.domain_id,
            clock=wall or WallClock.now(),
            sampling=config.sampling,
            policy=config.policy,
        )

    def poll(self) -> PollResult:
        """One round: read the map, export what is due, send it to every collector."""
        records, now = self._advanced()
        if self._maps is not None:
            records += self._retire(self.table.idle(), EndReason.IDLE_TIMEOUT)
            records += self._retire(self._maps.crowded(), EndReason.LACK_OF_RESOURCES)
        return self._send(records, now)

    def stop(self) -> PollResult:
        """A last poll, then with map access every flow deleted from the map and sent with
        its final counts (forced end), or without, every pending count (`flush`)."""
        if self._maps is None:
            records, now = self._advanced()
            return self._send(records + self.table.flush(), now)
        final = self._maps.drain()
        now = self._clock()
        records = self.table.update(final, now)
        return self._send(records + self.table.flush(forget=True), now)

    def _advanced(self) -> tuple[list[FlowRecord], int]:
        """Read the map and advance the table to now: the records due, and now."""
        changes = self._source.read()
        now = self._clock()
        return self.table.advance(changes, now), now

    def _retire(self, keys: Sequence[FlowKey], reason: EndReason) -> list[FlowRecord]:
        if not keys or self._maps is None:
            return []
        final = self._maps.take(keys)
        out: list[FlowRecord] = []
        for key in keys:
            out += self.table.retire(key, final.get(key), reason)
        return out

    def flush(self) -> PollResult:
        """Send every pending count (the exporter is stopping)."""
        return self._send(self.table.flush(), self._clock())

    def due(self) -> bool:
        """Whether a poll now may send something (the module docstring)."""
        return self._clock() >= self.table.due_ns() or self._source.needs_read()

    def run(
        self,
        *,
        wait: Callable[[float], bool],
        polled: Callable[[PollResult], None] = lambda _: None,
        once: bool = False,
    ) -> PollResult:
        """Poll, then every poll_interval_ms poll again if `due`, until `wait(seconds)` says
        stop (True) or after the first poll with `once`; then `stop`. `polled` sees every
        poll's result but the last, which is returned."""
        polled(self.poll())
        while not once and not wait(self.config.poll_interval_ms / 1000):
            if self.due():
                polled(self.poll())
        return self.stop()

    def _send(self, records: list[FlowRecord], now_ns: int) -> PollResult:
        datagrams = self.encoder.encode(records, now_ns)
        for datagram in datagrams:
            for sender in self._senders:
                sender.send(datagram.payload)
        return PollResult(tuple(records), tuple(datagrams), self.table.stats())
