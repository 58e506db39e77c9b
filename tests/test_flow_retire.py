"""An exporter that deletes from the map: idle flows retired with their final counters, crowded
maps relieved before the LRU evicts, everything deleted and sent on stop, and a successor to a
crashed exporter that counts nothing twice. The map is a fake with the kernel's semantics:
cumulative per-key counters that packets keep growing until the entry is deleted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hercc.flows.exporter import ExportConfig, Exporter, Snapshots
from hercc.flows.records import Direction, EndReason, FlowCounters, FlowKey, FlowRecord
from hercc.flows.table import FlowTable

S = 1_000_000_000


def key(n: int) -> FlowKey:
    a = ipaddress.ip_address(f"10.0.0.{n}")
    return FlowKey(a, ipaddress.ip_address("10.0.1.1"), 1000 + n, 53, 17, 3, Direction.INGRESS)


class FakeMap:
    """A flow map: `hit` counts packets; `take` deletes; `crowd` is what `crowded` returns."""

    def __init__(self) -> None:
        self.flows: dict[FlowKey, FlowCounters] = {}
        self.deleted: list[FlowKey] = []
        self.crowd: list[FlowKey] = []
        self.late: dict[FlowKey, int] = {}  # packets that come between a snapshot and `take`

    def hit(self, k: FlowKey, now: int, packets: int = 1, size: int = 100) -> None:
        c = self.flows.get(k) or FlowCounters(0, 0, now, now, 0)
        self.flows[k] = FlowCounters(
            c.packets + packets, c.octets + packets * size, c.first_ns, now, 0
        )

    def entries(self) -> list[tuple[FlowKey, list[FlowCounters]]]:
        return [(k, [c]) for k, c in self.flows.items()]

    def take(self, keys: Sequence[FlowKey]) -> dict[FlowKey, FlowCounters]:
        for k, packets in self.late.items():
            self.hit(k, self.flows[k].last_ns + 1, packets)
        self.late = {}
        out = {k: self.flows.pop(k) for k in keys if k in self.flows}
        self.deleted += list(out)
        return out

    def drain(self) -> dict[FlowKey, FlowCounters]:
        return self.take(list(self.flows))

    def crowded(self) -> list[FlowKey]:
        return [k for k in self.crowd if k in self.flows]


class Hits:
    """The map of an exporter, and the totals that really went through."""

    def __init__(self) -> None:
        self.map = FakeMap()
        self.sent: dict[FlowKey, list[int]] = {}
        self.now = 100 * S
        config = ExportConfig("ipfix", 60_000, 15_000, sampling=1, domain_id=1)
        self.exporter = Exporter(
            config, Snapshots(self.map.entries), [], clock=lambda: self.now, maps=self.map
        )

    def hit(self, n: int, packets: int = 1) -> None:
        self.map.hit(key(n), self.now, packets)
        row = self.sent.setdefault(key(n), [0, 0])
        row[0] += packets
        row[1] += packets * 100

    def records(self, records: Sequence[FlowRecord]) -> dict[FlowKey, list[int]]:
        out: dict[FlowKey, list[int]] = {}
        for r in records:
            row = out.setdefault(r.key, [0, 0])
            row[0] += r.packets
            row[1] += r.octets
        return out


def total(*parts: dict[FlowKey, list[int]]) -> dict[FlowKey, list[int]]:
    out: dict[FlowKey, list[int]] = {}
    for part in parts:
        for k, (p, o) in part.items():
            row = out.setdefault(k, [0, 0])
            row[0] += p
            row[1] += o
    return out


def test_idle_flows_leave_the_map_with_what_came_after_the_snapshot() -> None:
    h = Hits()
    h.hit(1, 5)
    h.hit(2, 3)
    records = list(h.exporter.poll().records)
    h.now += 20 * S  # both idle
    h.map.late = {key(2): 1}  # a packet between the snapshot and the deletion
    h.sent[key(2)] = [4, 400]
    result = h.exporter.poll()
    records += result.records
    assert h.map.flows == {} and sorted(h.map.deleted) == [key(1), key(2)]
    assert {r.reason for r in result.records} == {EndReason.IDLE_TIMEOUT}
    assert result.table.evicted == 0 and result.table.flows == 0
    assert h.records(records) == h.sent


def test_a_retired_flow_counts_every_packet_once() -> None:
    """Idle export, deletion, a packet racing the deletion, a new entry: the totals are exact."""
    table = FlowTable(active_timeout_ms=60_000, idle_timeout_ms=15_000)
    k = key(1)
    out = table.update({k: FlowCounters(5, 500, 10 * S, 10 * S, 0)}, 11 * S)
    out += table.update({k: FlowCounters(5, 500, 10 * S, 10 * S, 0)}, 30 * S)  # idle: sent
    assert table.idle() == [k]
    # the deletion finds one more packet than the snapshot
    out += table.retire(k, FlowCounters(6, 600, 10 * S, 31 * S, 0), EndReason.IDLE_TIMEOUT)
    assert table.keys() == [] and table.stats().evicted == 0
    out += table.update({k: FlowCounters(2, 200, 40 * S, 41 * S, 0)}, 42 * S)  # a new entry
    out += table.flush()
    assert sum(r.packets for r in out) == 8 and sum(r.octets for r in out) == 800
    assert [r.reason for r in out] == [
        EndReason.IDLE_TIMEOUT,
        EndReason.IDLE_TIMEOUT,
        EndReason.FORCED_END,
    ]
    assert out[1].first_ns == 30 * S  # after the poll that had sent the rest


def test_retiring_an_entry_the_lru_took_or_made_again() -> None:
    table = FlowTable(active_timeout_ms=60_000, idle_timeout_ms=15_000)
    a, b = key(1), key(2)
    table.update({a: FlowCounters(5, 500, S, S, 0), b: FlowCounters(7, 700, S, S, 0)}, 2 * S)
    gone = table.retire(a, None, EndReason.LACK_OF_RESOURCES)
    again = table.retire(b, FlowCounters(1, 100, 3 * S, 3 * S, 0), EndReason.FORCED_END)
    assert [(r.packets, r.reason) for r in gone] == [(5, EndReason.LACK_OF_RESOURCES)]
    assert [(r.packets, r.reason) for r in again] == [
        (7, EndReason.LACK_OF_RESOURCES),  # the old entry, as last seen
        (1, EndReason.FORCED_END),  # the new one, whole
    ]
    assert table.stats().evicted == 2
    assert table.retire(key(3), None, EndReason.FORCED_END) == []  # never seen: nothing


def test_crowded_flows_are_sent_and_deleted_before_the_lru_evicts() -> None:
    h = Hits()
    for n in range(1, 6):
        h.hit(n, n)
    h.map.crowd = [key(1), key(2)]
    result = h.exporter.poll()
    assert sorted(h.map.deleted) == [key(1), key(2)]
    assert {r.key: r.reason for r in result.records} == {
        key(1): EndReason.LACK_OF_RESOURCES,
        key(2): EndReason.LACK_OF_RESOURCES,
    }
    assert result.table.flows == 3 and result.table.evicted == 0


def test_stop_deletes_every_flow_and_sends_all_it_counted() -> None:
    h = Hits()
    records: list[FlowRecord] = []
    for step in range(30):
        for n in range(1, 8):
            if (step * n) % 3 != 1:
                h.hit(n, n)
        records += h.exporter.poll().records
        h.now += 4 * S
    h.hit(7, 2)
    records += h.exporter.stop().records
    assert h.map.flows == {}
    assert h.records(records) == h.sent


def test_a_successor_to_a_crashed_exporter_counts_nothing_twice() -> None:
    h = Hits()
    h.hit(1, 10)
    h.now += 61 * S
    first = h.exporter.poll().records  # active timeout: sent, still in the map; then it dies
    assert h.records(first) == h.sent
    config = ExportConfig("ipfix", 60_000, 15_000, sampling=1, domain_id=1)
    successor = Exporter(config, Snapshots(h.map.entries), [], clock=lambda: h.now, maps=h.map)
    successor.table.adopt({k: c[0] for k, c in h.map.entries()})
    h.hit(1, 4)
    rest = successor.poll().records + successor.stop().records
    assert total(h.records(first), h.records(rest)) == h.sent
