"""The exporter's flow cache: map snapshots in, flow records out.

The accounting map holds cumulative counters per key. `FlowTable.update`
takes one snapshot (every key's counters summed over CPUs) at a monotonic
time and returns the records due:

- a flow's record carries the packets and octets since its previous record:
  the difference between the snapshot and what earlier records covered, so
  nothing is lost or counted twice however often snapshots are taken;
- idle timeout: a flow whose last packet is idle_timeout old is exported and
  its record closed. While its key stays in the map, the table remembers how
  much it covered: if packets come again, they start a new record. An
  exporter that deletes from the map (hercc.state.flow_export) asks which
  flows are `idle`, deletes them with their final counters and hands those
  to `retire`, which sends what came meanwhile and forgets the flow;
- active timeout: a flow whose open record began active_timeout ago is
  exported with what it has, and a new record starts;
- eviction: a key gone from the map (the LRU dropped it), or back with a
  new first_ns or smaller counts (dropped and re-created between two
  snapshots), is exported from its last snapshot and counted in `evicted`.
  Packets it saw after that snapshot are lost: size the map and poll often;
- sampling 1-in-N: a record carries floor(cumulative / N) minus what the
  flow's earlier records carried, for packets and octets alike (systematic
  count-based sampling of the counters, the remainders carried): the packets
  of a flow's records add up to floor(total / N), with no drift however
  often it is polled. A record is sent only once it holds a sampled packet;
  until then it stays open, so the octets that came after a flow's last
  sampled packet are not sent.

The map keeps one first_ns per entry, so a continuation record (after an
active timeout, or a new record after idle) starts at the best bound known:
the previous poll, when its first new packet had not come yet (or its last
packet, if that was later). Its TCP flags are the OR over the entry's life,
for the same reason.

A poll costs what changed, not what the map holds: `advance` takes only the
entries that are new or moved and the keys gone (`MapChanges`; `update`
works them out from a whole snapshot), and a heap of deadlines (a flow's
idle or active timeout, whichever comes first) finds the quiet flows that
are due, so an entry that did not change costs nothing. `due_ns` says when
the next poll can have something to send: the earliest deadline, or for a
flow not seen yet, the last poll plus the shorter timeout (its first packet
came after that poll). An exporter may sleep until then (state/flow_export).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from hercc.flows.records import (
    NS_PER_MS,
    EndReason,
    FlowCounters,
    FlowKey,
    FlowRecord,
    MapChanges,
)  # fmt: skip


@dataclass(slots=True)
class _Entry:
    seen: FlowCounters  # the latest snapshot's cumulative counters
    done_packets: int = 0  # the cumulative counts earlier records covered
    done_octets: int = 0
    record_first_ns: int | None = None  # the open record's start; None: nothing pending
    due_ns: int | None = None  # when its earliest timer in the heap fires; None: no timer


@dataclass(frozen=True, slots=True)
class TableStats:
    flows: int  # keys the table follows (as many as the map holds)
    open_records: int  # flows with counts not yet exported
    records: int  # records exported so far
    evicted: int  # entries the map dropped (or re-created) between snapshots


class FlowTable:
    def __init__(self, *, active_timeout_ms: int, idle_timeout_ms: int, sampling: int = 1) -> None:
        if sampling < 1:
            raise ValueError(f"sampling must be 1 or more, not {sampling}")
        self._active_ns = active_timeout_ms * NS_PER_MS
        self._idle_ns = idle_timeout_ms * NS_PER_MS
        self._sampling = sampling
        self._entries: dict[FlowKey, _Entry] = {}
        # (due, order, key): a key's timer; stale ones (the entry gone or due later) are skipped
        self._timers: list[tuple[int, int, FlowKey]] = []
        self._order = itertools.count()
        self._idle: dict[FlowKey, None] = {}  # closed and quiet for idle_timeout, in order
        self._open = 0  # entries with a record_first_ns
        self._records = 0
        self._evicted = 0
        self._last_poll_ns = 0

    def update(self, snapshot: Mapping[FlowKey, FlowCounters], now_ns: int) -> list[FlowRecord]:
        """The records due after this snapshot of the whole map, taken at monotonic time now_ns."""
        entries = self._entries
        changed = {
            k: c for k, c in snapshot.items() if (e := entries.get(k)) is None or e.seen != c
        }
        return self.advance(MapChanges(changed, [k for k in entries if k not in snapshot]), now_ns)

    def advance(self, changes: MapChanges, now_ns: int) -> list[FlowRecord]:
        """The records due after a read that found `changes`, at monotonic time now_ns."""
        out: list[FlowRecord] = []
        entries, idle = self._entries, self._idle
        for key in changes.gone:
            entry = entries.get(key)
            if entry is not None:
                self._evict(key, entry, out)
                self._discard(key)
        # The loop of every poll: `retire` makes the same two checks, but here they stay
        # inline, as a method call per changed entry made a poll about 15% slower.
        for key, counters in changes.changed.items():
            entry = entries.get(key)
            if entry is not None and (
                counters.first_ns != entry.seen.first_ns or counters.packets < entry.seen.packets
            ):
                self._evict(key, entry, out)
                self._discard(key)
                entry = None
            if entry is None:
                entry = entries[key] = _Entry(counters, record_first_ns=counters.first_ns)
                self._open += 1
            else:
                if entry.record_first_ns is None and counters.packets > entry.done_packets:
                    since = max(entry.seen.last_ns, self._last_poll_ns)
                    self._open_record(entry, min(since, counters.last_ns))
                entry.seen = counters
                idle.pop(key, None)
            self._schedule(key, entry, self._deadline(entry))
        self._expire_due(now_ns, out)
        self._last_poll_ns = now_ns
        return out

    def adopt(self, snapshot: Mapping[FlowKey, FlowCounters]) -> None:
        """Take these counts as exported already (a successor to an exporter that died
        without deleting what it had sent: counting them again would double them)."""
        for key, counters in snapshot.items():
            entry = self._entries[key] = _Entry(counters, counters.packets, counters.octets)
            self._schedule(key, entry, self._deadline(entry))

    def keys(self) -> list[FlowKey]:
        return list(self._entries)

    def idle(self) -> list[FlowKey]:
        """The flows with nothing pending whose last packet was idle_timeout old at the last
        `advance`: what an exporter deletes from the map, so that the LRU never has to evict
        a live flow."""
        return list(self._idle)

    def due_ns(self) -> int:
        """The earliest monotonic time at which `advance` may have a record to send: a
        known flow's deadline, or the last poll plus the shorter timeout (the module doc)."""
        horizon = self._last_poll_ns + min(self._idle_ns, self._active_ns)
        return min(self._timers[0][0], horizon) if self._timers else horizon

    def retire(
        self, key: FlowKey, final: FlowCounters | None, reason: EndReason
    ) -> list[FlowRecord]:
        """The flow's map entry was deleted with `final` counters (None: it was gone
        already): its last record, with what came since the snapshot, and the table forgets
        it. An entry made again since the snapshot is the old one evicted and a new one."""
        out: list[FlowRecord] = []
        entry = self._entries.get(key)
        if entry is None:
            return out
        if final is None:
            self._evict(key, entry, out)
        else:
            if final.first_ns != entry.seen.first_ns or final.packets < entry.seen.packets:
                self._evict(key, entry, out)
                self._discard(key)
                entry = self._entries[key] = _Entry(final)
                self._open_record(entry, final.first_ns)
            elif final.packets > entry.done_packets:
                if entry.record_first_ns is None:
                    since = max(entry.seen.last_ns, self._last_poll_ns)
                    self._open_record(entry, min(since, final.last_ns))
                entry.seen = final
            self._emit(key, entry, reason, out)
        self._discard(key)
        return out

    def flush(self, *, forget: bool = False) -> list[FlowRecord]:
        """Every pending count as a last record (the exporter is stopping); with `forget`,
        the table is then empty (the map was emptied with these counts)."""
        out: list[FlowRecord] = []
        for key, entry in self._entries.items():
            self._emit(key, entry, EndReason.FORCED_END, out)
        if forget:
            self._entries.clear()
            self._timers.clear()
            self._idle.clear()
        return out

    def stats(self) -> TableStats:
        return TableStats(len(self._entries), self._open, self._records, self._evicted)

    def _deadline(self, entry: _Entry) -> int:
        idle_at = entry.seen.last_ns + self._idle_ns
        if entry.record_first_ns is None:
            return idle_at
        return min(idle_at, entry.record_first_ns + self._active_ns)

    def _schedule(self, key: FlowKey, entry: _Entry, due_ns: int) -> None:
        # A later deadline keeps the earlier timer, which finds it when it fires (no pile of
        # stale timers for a busy flow); an earlier one needs a timer of its own.
        if entry.due_ns is None or due_ns < entry.due_ns:
            entry.due_ns = due_ns
            heapq.heappush(self._timers, (due_ns, next(self._order), key))

    def _expire_due(self, now_ns: int, out: list[FlowRecord]) -> None:
        timers, entries = self._timers, self._entries
        while timers and timers[0][0] <= now_ns:
            due, _, key = heapq.heappop(timers)
            entry = entries.get(key)
            if entry is None or entry.due_ns != due:
                continue
            entry.due_ns = None
            self._expire(key, entry, now_ns, out)

    def _expire(self, key: FlowKey, entry: _Entry, now_ns: int, out: list[FlowRecord]) -> None:
        if entry.record_first_ns is not None:
            if now_ns - entry.seen.last_ns >= self._idle_ns:
                self._emit(key, entry, EndReason.IDLE_TIMEOUT, out)
            elif now_ns - entry.record_first_ns >= self._active_ns:
                self._emit(key, entry, EndReason.ACTIVE_TIMEOUT, out)
        if entry.record_first_ns is None and now_ns - entry.seen.last_ns >= self._idle_ns:
            self._idle[key] = None
            return
        due = self._deadline(entry)
        if due > now_ns:
            self._schedule(key, entry, due)
        # else: a record with no sampled packet yet stays open without a timer until the
        # entry changes (only new packets can make it sendable)

    def _open_record(self, entry: _Entry, first_ns: int) -> None:
        entry.record_first_ns = first_ns
        self._open += 1

    def _discard(self, key: FlowKey) -> None:
        entry = self._entries.pop(key)
        self._idle.pop(key, None)
        if entry.record_first_ns is not None:
            self._open -= 1

    def _evict(self, key: FlowKey, entry: _Entry, out: list[FlowRecord]) -> None:
        self._evicted += 1
        self._emit(key, entry, EndReason.LACK_OF_RESOURCES, out)

    def _emit(self, key: FlowKey, entry: _Entry, reason: EndReason, out: list[FlowRecord]) -> None:
        first_ns = entry.record_first_ns
        if first_ns is None:
            return
        seen, n = entry.seen, self._sampling
        packets = seen.packets // n - entry.done_packets // n
        if packets == 0 and reason in (EndReason.IDLE_TIMEOUT, EndReason.ACTIVE_TIMEOUT):
            return  # no sampled packet yet: the record stays open until one comes
        octets = seen.octets // n - entry.done_octets // n
        entry.done_packets, entry.done_octets = seen.packets, seen.octets
        entry.record_first_ns = None
        self._open -= 1
        if packets == 0:
            return
        self._records += 1
        out.append(FlowRecord(key, packets, octets, first_ns, seen.last_ns, seen.tcp_flags, reason))
