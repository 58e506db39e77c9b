"""The flow table: deltas between snapshots, timeouts, eviction and sampling, to the packet."""

from __future__ import annotations

import ipaddress
import random
from collections import defaultdict

import pytest

from hercc.flows.records import (
    Direction,
    EndReason,
    FlowCounters,
    FlowKey,
    FlowRecord,
    MapChanges,
    WallClock,
    merge,
    sum_cpus,
)  # fmt: skip
from hercc.flows.table import FlowTable

S = 1_000_000_000  # ns


def key(i: int, *, v6: bool = False) -> FlowKey:
    src = ipaddress.ip_address(f"fd00::{i + 1:x}" if v6 else f"10.0.{i // 256}.{i % 256}")
    dst = ipaddress.ip_address("fd00::ffff" if v6 else "10.255.0.1")
    return FlowKey(src, dst, 1024 + i, 80, 6, 2, Direction.INGRESS)


def c(packets: int, octets: int, first: float, last: float, flags: int = 0) -> FlowCounters:
    return FlowCounters(packets, octets, int(first * S), int(last * S), flags)


def table(sampling: int = 1) -> FlowTable:
    return FlowTable(active_timeout_ms=60_000, idle_timeout_ms=15_000, sampling=sampling)


def test_sum_cpus_ignores_idle_cpus() -> None:
    cpus = [c(0, 0, 0, 0), c(3, 300, 10, 12, 0x02), c(2, 100, 9, 11, 0x10)]
    assert sum_cpus(cpus) == c(5, 400, 9, 12, 0x12)
    assert sum_cpus([c(0, 0, 0, 0)]) is None
    assert merge([(key(1), [c(0, 0, 0, 0)]), (key(2), cpus)]) == {key(2): c(5, 400, 9, 12, 0x12)}


def test_wall_clock_is_one_offset() -> None:
    clock = WallClock(offset_ns=1_700_000_000_000_000_000)
    assert clock.unix_ms(1_999_999) == 1_700_000_000_001
    assert clock.unix_ms(2_000_000) == 1_700_000_000_002


def test_idle_flow_is_exported_once_and_again_only_for_new_packets() -> None:
    t = table()
    assert t.update({key(1): c(5, 500, 100, 101)}, 110 * S) == []
    (rec,) = t.update({key(1): c(5, 500, 100, 101)}, 116 * S)
    assert (rec.packets, rec.octets, rec.first_ns, rec.last_ns, rec.reason) == (
        5,
        500,
        100 * S,
        101 * S,
        EndReason.IDLE_TIMEOUT,
    )
    assert t.update({key(1): c(5, 500, 100, 101)}, 200 * S) == []  # still in the map, nothing new
    # New packets on the same entry: a new record, starting at the poll before them.
    assert t.update({key(1): c(7, 800, 100, 205)}, 206 * S) == []
    (rec,) = t.update({key(1): c(7, 800, 100, 205)}, 221 * S)
    assert (rec.packets, rec.octets, rec.first_ns, rec.last_ns) == (2, 300, 200 * S, 205 * S)
    assert t.stats().records == 2 and t.stats().open_records == 0


def test_active_timeout_exports_the_delta_since_the_last_record() -> None:
    t = table()
    assert t.update({key(1): c(10, 1000, 0, 30)}, 31 * S) == []
    (a,) = t.update({key(1): c(20, 2000, 0, 60)}, 61 * S)
    assert (a.packets, a.octets, a.reason, a.first_ns, a.last_ns) == (
        20,
        2000,
        EndReason.ACTIVE_TIMEOUT,
        0,
        60 * S,
    )
    assert (
        t.update({key(1): c(25, 2600, 0, 100)}, 101 * S) == []
    )  # the new record began at the 61 s poll
    (b,) = t.update({key(1): c(30, 3000, 0, 120)}, 121 * S)
    assert (b.packets, b.octets, b.first_ns, b.reason) == (
        10,
        1000,
        61 * S,
        EndReason.ACTIVE_TIMEOUT,
    )


def test_eviction_exports_the_last_snapshot_and_counts() -> None:
    t = table()
    t.update({key(1): c(4, 400, 1, 2), key(2): c(1, 60, 1, 1)}, 3 * S)
    (gone,) = t.update({key(2): c(2, 120, 1, 4)}, 5 * S)  # key 1 left the map
    assert (gone.key, gone.packets, gone.reason) == (key(1), 4, EndReason.LACK_OF_RESOURCES)
    # key 2 dropped and re-created between snapshots: a new first_ns.
    (old,) = t.update({key(2): c(1, 60, 6, 6)}, 7 * S)
    assert (old.packets, old.octets, old.first_ns) == (2, 120, 1 * S)
    assert [r.packets for r in t.flush()] == [1]
    assert t.stats().evicted == 2


def test_flush_sends_every_pending_count_once() -> None:
    t = table()
    t.update({key(1): c(3, 30, 1, 2), key(2, v6=True): c(4, 40, 1, 2)}, 3 * S)
    assert sorted(r.packets for r in t.flush()) == [3, 4]
    assert t.flush() == []


def test_sampling_exports_every_nth_count_and_never_drifts() -> None:
    t = table(sampling=10)
    t.update({key(1): c(25, 2599, 0, 1)}, 2 * S)
    (a,) = t.update({key(1): c(25, 2599, 0, 1)}, 20 * S)
    assert (a.packets, a.octets) == (2, 259)
    t.update({key(1): c(31, 3200, 0, 30)}, 31 * S)
    (b,) = t.flush()
    assert (a.packets + b.packets, a.octets + b.octets) == (31 // 10, 3200 // 10)
    # A timeout with no new sampled packet keeps the record open.
    t.update({key(1): c(39, 4000, 0, 40)}, 80 * S)
    assert t.stats().open_records == 1 and t.stats().records == 2
    # Fewer than N new packets: nothing sent, the remainder carried.
    t2 = table(sampling=10)
    t2.update({key(1): c(9, 900, 0, 1)}, 20 * S)
    assert t2.stats().records == 0


def test_sampling_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FlowTable(active_timeout_ms=1000, idle_timeout_ms=1000, sampling=0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("sampling", [1, 7])
def test_random_histories_are_exact(seed: int, sampling: int) -> None:
    """Growing counters, polls at random times, evictions and re-creations: per entry life,
    the records add up to floor(last snapshot / N), never more, never less."""
    rng = random.Random(seed)
    t = FlowTable(active_timeout_ms=5_000, idle_timeout_ms=2_000, sampling=sampling)
    live: dict[FlowKey, FlowCounters] = {}
    expected: dict[FlowKey, list[int]] = defaultdict(lambda: [0, 0])
    out: list[FlowRecord] = []
    now = 0

    def close(k: FlowKey) -> None:
        expected[k][0] += live[k].packets // sampling
        expected[k][1] += live[k].octets // sampling

    for _ in range(300):
        now += rng.randrange(1, 1500) * 1_000_000
        for k in [
            k for k in live if rng.random() < 0.03
        ]:  # evicted: what the last snapshot saw counts
            close(k)
            del live[k]
        for i in rng.sample(range(40), 8):
            k = key(i, v6=i % 3 == 0)
            old = live.get(k)
            n = rng.randrange(1, 20)
            if old is None:
                live[k] = FlowCounters(n, n * 100, now, now, 0x02)
            else:
                live[k] = FlowCounters(
                    old.packets + n, old.octets + n * 99, old.first_ns, now, old.tcp_flags | 0x10
                )
        out += t.update(dict(live), now)
    for k in live:
        close(k)
    out += t.flush()
    got: dict[FlowKey, list[int]] = defaultdict(lambda: [0, 0])
    for r in out:
        got[r.key][0] += r.packets
        got[r.key][1] += r.octets
        assert r.packets > 0 and r.first_ns <= r.last_ns
    expected = {k: v for k, v in expected.items() if v[0] > 0}
    if sampling == 1:
        assert got == expected
    else:  # packets exact; the octets after a flow's last sampled packet are not sent
        assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in expected.items()}
        assert all(0 <= expected[k][1] - v[1] < 20 * 100 * 5 for k, v in got.items())
    assert {r.reason for r in out} >= {EndReason.IDLE_TIMEOUT, EndReason.LACK_OF_RESOURCES}


def test_a_poll_costs_what_changed_and_timers_do_not_pile_up() -> None:
    t = table()
    flows = [key(i) for i in range(50)]
    for step in range(1, 300):  # busy flows: every poll moves them, and their deadlines
        t.update({k: c(step, step * 100, 0, step / 10) for k in flows}, step * S // 10 + 1)
    assert len(t._timers) <= 2 * len(flows)
    assert t.advance(MapChanges({}, []), 30 * S) == []  # nothing changed, nothing due
    # a timer armed for an earlier deadline fires, finds nothing due, and re-arms
    assert 30 * S < t.due_ns() < int(29.9 * S) + 15 * S
    assert t.advance(MapChanges({}, []), t.due_ns()) == []
    assert t.due_ns() == int(29.9 * S) + 15 * S  # the flows' idle timeout
