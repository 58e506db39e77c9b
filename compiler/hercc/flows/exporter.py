"""The export loop: map snapshots -> the flow table -> the encoder -> every collector.

Everything with a side effect comes in from outside: the snapshot source (a
callable returning the map's entries, per CPU), the senders (one per
collector), the monotonic clock and the sleep. `Exporter.poll` does one
round; `Exporter.run` polls until told to stop, then flushes what the table
still holds.

An exporter given `MapAccess` (hercc.state.flow_export's, over the pinned
maps) also deletes from the map, so that the LRU evicts no live flow: after
each poll, the flows exported and idle, and those `crowded` says a map too
full to keep (exported early, flowEndReason 5), each deleted with its final
counters (`FlowTable.retire`). `stop` deletes every flow with what it
counted last, so a successor starts from nothing it would count twice.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hercc import ir
from hercc.flows.ipfix import IpfixEncoder
from hercc.flows.netflow_v9 import NetflowV9Encoder
from hercc.flows.packing import Datagram, Encoder, ExportPolicy
from hercc.flows.records import EndReason, FlowCounters, FlowKey, FlowRecord, WallClock, merge
from hercc.flows.sender import Sender, UdpSender
from hercc.flows.table import FlowTable, TableStats

Entries = Iterable[tuple[FlowKey, Sequence[FlowCounters]]]
SnapshotSource = Callable[[], Entries]


class MapAccess(Protocol):
    """What an exporter may do to the map besides reading it."""

    def take(self, keys: Sequence[FlowKey]) -> Entries:
        """Delete these entries; their final counters (an entry gone already is left out)."""
        ...

    def crowded(self) -> Sequence[FlowKey]:
        """Flows to export and delete now, so the LRU does not evict live ones."""
        ...


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
        source: SnapshotSource,
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
        """One round: take a snapshot, export what is due, send it to every collector."""
        snapshot = merge(self._source())
        now = self._clock()
        records = self.table.update(snapshot, now)
        if self._maps is not None:
            records += self._retire(self.table.idle(now), EndReason.IDLE_TIMEOUT)
            records += self._retire(self._maps.crowded(), EndReason.LACK_OF_RESOURCES)
        return self._send(records, now)

    def stop(self) -> PollResult:
        """A last poll, then every flow deleted from the map and sent with its final counts
        (forced end), or without map access, every pending count (`flush`)."""
        snapshot = merge(self._source())
        now = self._clock()
        records = self.table.update(snapshot, now)
        if self._maps is not None:
            records += self._retire(self.table.keys(), EndReason.FORCED_END)
        return self._send(records + self.table.flush(), now)

    def _retire(self, keys: Sequence[FlowKey], reason: EndReason) -> list[FlowRecord]:
        if not keys or self._maps is None:
            return []
        final = merge(self._maps.take(keys))
        out: list[FlowRecord] = []
        for key in keys:
            out += self.table.retire(key, final.get(key), reason)
        return out

    def flush(self) -> PollResult:
        """Send every pending count (the exporter is stopping)."""
        return self._send(self.table.flush(), self._clock())

    def run(
        self, *, stop: Callable[[], bool], sleep: Callable[[float], None] = time.sleep
    ) -> TableStats:
        """Poll every poll_interval_ms until `stop()` says so, then poll once more (what the map
        counted since the last poll) and flush; the final stats."""
        while not stop():
            self.poll()
            sleep(self.config.poll_interval_ms / 1000)
        return self.stop().table

    def _send(self, records: list[FlowRecord], now_ns: int) -> PollResult:
        datagrams = self.encoder.encode(records, now_ns)
        for datagram in datagrams:
            for sender in self._senders:
                sender.send(datagram.payload)
        return PollResult(tuple(records), tuple(datagrams), self.table.stats())
