"""Micro-benchmark: what hercc's flow exporter spends a flow, on a synthetic map of N flows.

A per-CPU LRU hash in the layout of dataplane/account.h (and its counters
map) is made with bpf_map_create, pinned where apply pins a node's object,
and filled with bpf_map_update_batch (flows spread over the CPUs, one CPU
each, like the generator's), so no program or compiler is needed. Then the
exporter's own pieces (hercc.state.flow_export's NodeMaps, the flow table,
the IPFIX encoder) run on it, each timed in this thread's CPU time:

- read, all new: the first read (every key decoded);
- read, none moved: a read that finds nothing changed (what every poll of
  a quiet map would cost, if the exporter did not skip it);
- read, all moved: every entry's counters changed;
- table: the changes through FlowTable.advance;
- take: bpf_map_lookup_and_delete_elem of a third of the flows, and the
  table's retire;
- stop: drain (bpf_map_lookup_and_delete_batch) of the rest, the table's
  last update and flush, and the encoding of every record (IPFIX);
- syscalls: bpf(2) calls a read makes.

Ends with one JSON line (µs per flow). Needs root.

    python bench/flow_export_cost.py [--flows N] [--rounds R]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler")
)

from hercc.dataplane.attach import MAP_PREFIX, node_root, pin_dir
from hercc.dataplane.layout import COUNTERS, FLOW_KEY, FLOW_VALUE
from hercc.flows.ipfix import IpfixEncoder
from hercc.flows.packing import ExportPolicy
from hercc.flows.records import EndReason, WallClock
from hercc.flows.table import FlowTable
from hercc.state.flow_export import NodeMaps
from hercc.state.flow_maps import FlowMaps
from hercc.state.libbpf_maps import BATCH, libbpf
from hercc.state.registry import OwnedRegistry

LRU_PERCPU_HASH, PERCPU_ARRAY = 10, 6
S = 1_000_000_000


class Counting:
    """libbpf with its calls counted."""

    def __init__(self, lib: Any) -> None:
        self._lib, self.calls = lib, 0

    def __getattr__(self, name: str) -> Any:
        func = getattr(self._lib, name)

        def call(*args: Any) -> Any:
            self.calls += 1
            return func(*args)

        return call


class Synthetic:
    """A node's pinned object with a flow map of `size` entries."""

    def __init__(self, node: str, size: int) -> None:
        lib = self.lib = libbpf()
        vp = ctypes.c_void_p
        lib.bpf_map_create.argtypes = [ctypes.c_int, ctypes.c_char_p, *[ctypes.c_uint32] * 3, vp]
        lib.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
        lib.bpf_map_update_batch.argtypes = [ctypes.c_int, vp, vp, vp, vp]
        self.cpus = int(lib.libbpf_num_possible_cpus())
        self.directory = Path(pin_dir(node, "ns", "tc", "0" * 16))
        self.directory.mkdir(parents=True)
        self.fds = [
            self._map(LRU_PERCPU_HASH, "flows", FLOW_KEY.size, FLOW_VALUE.size, size),
            self._map(PERCPU_ARRAY, "counters", 4, 8, len(COUNTERS)),
        ]

    def _map(self, kind: int, name: str, key: int, value: int, entries: int) -> int:
        fd = int(self.lib.bpf_map_create(kind, name.encode(), key, value, entries, None))
        if fd < 0 or self.lib.bpf_obj_pin(fd, str(self.directory / f"{MAP_PREFIX}{name}").encode()):
            sys.exit(f"flow_export_cost: cannot make map {name}: {os.strerror(ctypes.get_errno())}")
        return fd

    def fill(self, n: int, packets: int, first_ns: int, last_ns: int) -> None:
        size = FLOW_VALUE.size
        for start in range(0, n, BATCH):
            part = range(start, min(n, start + BATCH))
            keys = b"".join(
                FLOW_KEY.pack(struct.pack("!I", 0x0A000000 + i) + bytes(12),
                              bytes([10, 9, 9, 9]) + bytes(12), 1024 + i % 60000, 53, 3, 17, 4, 0)
                for i in part
            )  # fmt: skip
            one = FLOW_VALUE.pack(packets, packets * 92, first_ns, last_ns, 0)
            values = b"".join(
                bytes(size * (i % self.cpus)) + one + bytes(size * (self.cpus - 1 - i % self.cpus))
                for i in part
            )
            count = ctypes.c_uint32(len(part))
            if self.lib.bpf_map_update_batch(self.fds[0], keys, values, ctypes.byref(count), None):
                sys.exit(f"flow_export_cost: filling: {os.strerror(ctypes.get_errno())}")

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def timed(label: str, n: int, out: dict[str, list[float]], work: Callable[[], Any]) -> Any:
    start = time.thread_time_ns()
    result = work()
    out.setdefault(label, []).append((time.thread_time_ns() - start) / n / 1000)
    return result


def one_round(node: str, state: Path, n: int, out: dict[str, list[float]]) -> None:
    synthetic = Synthetic(node, 65536)
    now = time.monotonic_ns()
    maps = NodeMaps(node, state)
    try:
        synthetic.fill(n, 10, now - 2 * S, now - S)
        table = FlowTable(active_timeout_ms=60_000, idle_timeout_ms=15_000)
        first = timed("read, all new", n, out, maps.read)
        timed("table, all new", n, out, lambda: table.advance(first, now))
        timed("read, none moved", n, out, maps.read)
        synthetic.fill(n, 11, now - 2 * S, now)
        moved = timed("read, all moved", n, out, maps.read)
        timed("table, all moved", n, out, lambda: table.advance(moved, now + S))
        keys = list(moved.changed)[: n // 3]

        def take() -> None:
            final = maps.take(keys)
            for key in keys:
                table.retire(key, final.get(key), EndReason.IDLE_TIMEOUT)

        timed("take (and retire)", len(keys), out, take)
        encoder = IpfixEncoder(
            domain_id=1, clock=WallClock.now(), sampling=1, policy=ExportPolicy()
        )

        def stop() -> None:
            records = table.update(maps.drain(), now + 2 * S) + table.flush(forget=True)
            encoder.encode(records, now + 2 * S)

        timed("stop: drain, table, encode", n - len(keys), out, stop)
        synthetic.fill(n, 10, now, now)
        lib = Counting(libbpf())
        with FlowMaps(synthetic.directory, lib) as flows:
            flows.read()
            lib.calls = 0
            flows.read()
            out.setdefault("syscalls a read", []).append(lib.calls)
    finally:
        maps.close()
        synthetic.close()
        shutil.rmtree(node_root(node), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("flow_export_cost needs root (BPF maps)")
    node = f"flowcost{os.getpid()}"
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="flow-cost-") as tmp:
        OwnedRegistry(node, tmp).save({"ns"})
        for _ in range(args.rounds):
            one_round(node, Path(tmp), args.flows, out)
    medians = {k: round(statistics.median(v), 3) for k, v in out.items()}
    for label, value in medians.items():
        unit = "" if label.startswith("syscalls") else " µs a flow"
        print(f"{label:<28} {value:>9}{unit}")
    print(json.dumps({"bench": "flow_export_cost", "flows": args.flows, "cpus": os.cpu_count(),
                      "load": os.getloadavg()[0], "us_per_flow": medians}))  # fmt: skip


if __name__ == "__main__":
    main()
