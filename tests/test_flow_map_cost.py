"""What a poll costs, as counts rather than times, so that a regression fails here: a read of
N flows makes one syscall per BATCH entries and decodes only the entries that changed; `take`
makes one per flow and `drain` one per batch; an exporter with nothing due makes no read at
all, only one counter lookup per map; the table's timers do not pile up with polls.

The maps are made here with bpf_map_create in the layout of dataplane/account.h (a per-CPU
LRU hash of flows and a per-CPU array of counters), pinned where apply pins a node's object,
and filled with bpf_map_update_batch: no program or compiler is needed. Skipped without root.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hercc.dataplane.attach import MAP_PREFIX, node_root, pin_dir
from hercc.dataplane.layout import COUNTERS, FLOW_KEY, FLOW_VALUE
from hercc.flows.exporter import ExportConfig, Exporter
from hercc.flows.records import MapChanges
from hercc.state.flow_export import LOW_WATER, NodeMaps
from hercc.state.flow_maps import FlowMaps
from hercc.state.libbpf_maps import BATCH, libbpf
from hercc.state.registry import OwnedRegistry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="BPF maps need root")

NODE = f"hfc{os.getpid()}"
LRU_PERCPU_HASH, PERCPU_ARRAY = 10, 6
S = 1_000_000_000
T0 = 1000 * S


class Counting:
    """libbpf with every call counted by name."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        func = getattr(self._lib, name)

        def call(*args: Any) -> Any:
            self.calls[name] += 1
            return func(*args)

        return call


class Synthetic:
    """A node's object with a flow map of `size` entries and its counters, pinned."""

    def __init__(self, size: int) -> None:
        self.lib = libbpf()
        lib, vp = self.lib, ctypes.c_void_p
        lib.bpf_map_create.argtypes = [ctypes.c_int, ctypes.c_char_p, *[ctypes.c_uint32] * 3, vp]
        lib.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
        lib.bpf_map_update_batch.argtypes = [ctypes.c_int, vp, vp, ctypes.c_void_p, vp]
        self.cpus = int(lib.libbpf_num_possible_cpus())
        self.directory = Path(pin_dir(NODE, "ns0", "tc", "0123456789abcdef"))
        self.directory.mkdir(parents=True)
        self.flows = self._map(LRU_PERCPU_HASH, "flows", FLOW_KEY.size, FLOW_VALUE.size, size)
        self.counters = self._map(PERCPU_ARRAY, "counters", 4, 8, len(COUNTERS))

    def _map(self, kind: int, name: str, key: int, value: int, entries: int) -> int:
        fd = int(self.lib.bpf_map_create(kind, name.encode(), key, value, entries, None))
        assert fd >= 0, os.strerror(ctypes.get_errno())
        assert self.lib.bpf_obj_pin(fd, str(self.directory / f"{MAP_PREFIX}{name}").encode()) == 0
        return fd

    @staticmethod
    def key(i: int) -> bytes:
        src = struct.pack("!I", 0x0A000000 + i) + bytes(12)
        return FLOW_KEY.pack(
            src, bytes([10, 9, 9, 9]) + bytes(12), 1024 + i % 60000, 53, 3, 17, 4, 0
        )

    def hit(self, flows: range, packets: int, last_ns: int) -> None:
        """Flows `flows` hold `packets` packets now, the last at last_ns, each on one CPU."""
        for start in range(0, len(flows), BATCH):
            part = flows[start : start + BATCH]
            keys = b"".join(map(self.key, part))
            values = b"".join(self._value(i, packets, last_ns) for i in part)
            count = ctypes.c_uint32(len(part))
            rc = self.lib.bpf_map_update_batch(self.flows, keys, values, ctypes.byref(count), None)
            assert rc == 0, os.strerror(ctypes.get_errno())
        created = struct.pack("=I", COUNTERS.index("flows_created"))
        value = struct.pack("=Q", flows.stop) + bytes(8 * (self.cpus - 1))
        assert self.lib.bpf_map_update_elem(self.counters, created, value, 0) == 0

    def _value(self, i: int, packets: int, last_ns: int) -> bytes:
        one = FLOW_VALUE.pack(packets, packets * 100, T0, last_ns, 0)
        cpu = i % self.cpus
        return bytes(FLOW_VALUE.size * cpu) + one + bytes(FLOW_VALUE.size * (self.cpus - 1 - cpu))

    def close(self) -> None:
        os.close(self.flows)
        os.close(self.counters)
        shutil.rmtree(node_root(NODE), ignore_errors=True)  # bpffs: unlinks the pins


@pytest.fixture
def synthetic() -> Iterator[Callable[[int], Synthetic]]:
    made: list[Synthetic] = []

    def make(size: int) -> Synthetic:
        made.append(Synthetic(size))
        return made[-1]

    yield make
    for s in made:
        s.close()


def batches(n: int) -> int:
    return n // BATCH + 1  # the last one (ENOENT) is partial, or empty


def test_a_read_costs_a_syscall_per_batch_and_decodes_only_what_moved(
    synthetic: Callable[[int], Synthetic],
) -> None:
    n = 3 * BATCH + 5
    m = synthetic(4 * BATCH)
    m.hit(range(n), 1, T0)
    lib = Counting(libbpf())
    with FlowMaps(m.directory, lib) as maps:
        lib.calls.clear()
        first = maps.read()
        assert len(first.changed) == n and first.gone == []
        assert lib.calls == {"bpf_map_lookup_batch": batches(n), "bpf_map_lookup_elem": 1}
        lib.calls.clear()
        assert maps.read() == MapChanges({}, [])  # nothing moved: nothing decoded
        assert lib.calls == {"bpf_map_lookup_batch": batches(n), "bpf_map_lookup_elem": 1}
        m.hit(range(10), 2, T0 + S)
        moved = maps.read().changed
        assert len(moved) == 10 and all(c.packets == 2 for c in moved.values())
        assert all(any(k is f for f in first.changed) for k in moved)  # each key decoded once


def test_take_costs_a_syscall_per_flow_and_drain_one_per_batch(
    synthetic: Callable[[int], Synthetic],
) -> None:
    n = 2 * BATCH + 1
    m = synthetic(4 * BATCH)
    m.hit(range(n), 3, T0)
    lib = Counting(libbpf())
    with FlowMaps(m.directory, lib) as maps:
        keys = list(maps.read().changed)
        lib.calls.clear()
        assert len(maps.take(keys[:100])) == 100
        assert lib.calls == {
            "bpf_map_lookup_and_delete_elem": 100,
            "bpf_map_lookup_elem": 1,  # flows_deleted, read
            "bpf_map_update_elem": 1,  # and written
        }
        lib.calls.clear()
        final = maps.drain()
        assert set(final) == set(keys[100:]) and maps.live == 0
        assert lib.calls == {
            "bpf_map_lookup_and_delete_batch": batches(n - 100),
            "bpf_map_lookup_elem": 1,
            "bpf_map_update_elem": 1,
        }
        assert maps.read() == MapChanges({}, [])  # empty, and nothing gone: deleted by us
        assert maps.counters(0)["flows_deleted"] == n


def test_an_exporter_reads_only_when_something_can_be_due(
    synthetic: Callable[[int], Synthetic], tmp_path: Path
) -> None:
    size = 10_000
    m = synthetic(size)
    m.hit(range(100), 1, T0)
    OwnedRegistry(NODE, tmp_path).save({"ns0"})
    now = [T0 + S]
    maps = NodeMaps(NODE, tmp_path)
    config = ExportConfig("ipfix", 60_000, 15_000, 1, domain_id=1)
    exporter = Exporter(config, maps, [], clock=lambda: now[0], maps=maps)
    try:
        assert exporter.poll().table.flows == 100
        for second in range(2, 15):  # no flow due before T0 + 15 s: the map is left unread
            now[0] = T0 + second * S
            assert not exporter.due()
        m.hit(range(int(0.95 * size)), 1, T0)  # filling up (the LRU drops a few): read now
        assert exporter.due()
        result = exporter.poll()
        assert result.table.flows == int(LOW_WATER * size)  # the least recent ones deleted
        assert {r.reason.name for r in result.records} == {"LACK_OF_RESOURCES"}
        now[0] = T0 + 16 * S  # every flow idle: due
        assert exporter.due()
        assert exporter.poll().table.flows == 0
    finally:
        maps.close()
