"""A node's pinned flow and counter maps, opened by path from any process (the exporter's).

The dataplane pins each object's maps under
`<BPFFS>/hercules/<node>/<NS>/<hook>-<digest>/` (dataplane/attach.py);
`node_flow_maps` opens every object of a node that has a flow map, through
libbpf (state/libbpf_maps.py). A `FlowMaps` is kept open from poll to poll,
and a poll costs what changed, not what the map holds:

* `read`: the whole map in a few syscalls (bpf_map_lookup_batch, BATCH
  entries each; key by key where batches are refused), cut into each
  entry's raw key and per-CPU value, and compared as bytes with the previous
  read: only the entries whose bytes changed are decoded (their CPUs summed,
  their key made a FlowKey once in its life), and the keys no longer there
  are `gone` (MapChanges);
* `take`: bpf_map_lookup_and_delete_elem (hash maps, Linux 5.14) of these
  entries: each leaves the map with its final counters, so packets that came
  after the last read are exported, not lost;
* `drain`: every entry deleted with its final counters, a batch at a time
  (bpf_map_lookup_and_delete_batch);
* what `take` and `drain` delete is added to the counters map's
  `flows_deleted` (CPU 0's slot; no program writes it), so `counters` can
  work out `evicted` (dataplane/account.h): flows created, minus the live
  entries, minus those the exporter deleted;
* `may_overflow`: whether the map may be past a fill level since the last
  read, from the `flows_created` counter alone (one syscall), so an
  exporter can leave the map unread until something is due.
"""

from __future__ import annotations

import ctypes
import heapq
import struct
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from hercc.dataplane.attach import BPFFS, MAP_PREFIX, node_root, parse_object_name
from hercc.dataplane.layout import COUNTERS, FLOW_KEY, FLOW_VALUE
from hercc.flows.records import FlowCounters, FlowKey, MapChanges, sum_cpus
from hercc.state.dataplane import flow_key
from hercc.state.errors import DataplaneError
from hercc.state.libbpf_maps import Libbpf, MapFd, MapInfo, libbpf, open_map, possible_cpus

__all__ = ["FlowMaps", "MapInfo", "map_usage", "node_flow_maps", "read_counters"]

_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_CREATED = COUNTERS.index("flows_created")
_DELETED = COUNTERS.index("flows_deleted")
_FIELDS = len(FlowCounters._fields)


def _summer(cpus: int) -> Callable[[bytes], FlowCounters | None]:
    """A per-CPU flow value's counters summed over its CPUs, in one unpack (None: no CPU
    saw a packet). Most flows live on one CPU: that CPU's counters as they are, found by
    C-level tuple operations rather than a loop over the CPUs."""
    pad = (FLOW_VALUE.size + 7) // 8 * 8 - FLOW_VALUE.size
    unpack = struct.Struct("=" + (FLOW_VALUE.format[1:] + "x" * pad) * cpus).unpack
    new = tuple.__new__

    def total(raw: bytes) -> FlowCounters | None:
        v = unpack(raw)
        per_cpu = v[::_FIELDS]  # each CPU's packets
        packets = sum(per_cpu)
        if per_cpu.count(0) == cpus - 1:  # one CPU saw it all (or none did)
            if not packets:
                return None
            at = per_cpu.index(packets) * _FIELDS
            return new(FlowCounters, v[at : at + _FIELDS])
        return sum_cpus(new(FlowCounters, v[i : i + _FIELDS]) for i in range(0, len(v), _FIELDS))

    return total


class FlowMaps:
    """The flow map and the counters of one pinned object (the module docstring).

    Holds two file descriptors: `close` it (or use it as a context manager).
    """

    def __init__(self, directory: Path, lib: Libbpf | None = None) -> None:
        self.directory = directory
        lib = lib if lib is not None else libbpf()
        cpus = possible_cpus(lib)
        self._flows_fd = open_map(lib, directory / f"{MAP_PREFIX}flows", MAP_PREFIX, cpus)
        try:
            self._counters_fd = open_map(lib, directory / f"{MAP_PREFIX}counters", MAP_PREFIX, cpus)
        except DataplaneError:
            self._flows_fd.close()
            raise
        self.flows, self.counters_map = self._flows_fd.info, self._counters_fd.info
        if (self.flows.key_size, self.flows.value_size) != (FLOW_KEY.size, FLOW_VALUE.size):
            self.close()
            raise DataplaneError(f"{directory}: the flow map's layout differs from hercc's")
        self.inode = (directory / f"{MAP_PREFIX}flows").stat().st_ino  # a new pin: a new map
        self._total = _summer(cpus)
        self._last: dict[bytes, bytes] = {}  # raw key -> raw value, as the last read saw them
        self._keys: dict[bytes, FlowKey] = {}  # raw key -> FlowKey, for those handed out
        self._raw: dict[FlowKey, bytes] = {}  # and back
        self._created = 0  # flows_created at the last read
        self.batches = True  # False once the kernel refused a batch: key by key from then on

    @property
    def name(self) -> str:
        """The object: "<NS>/<hook>-<digest>"."""
        return f"{self.directory.parent.name}/{self.directory.name}"

    @property
    def live(self) -> int:
        """Entries the last read found, less those deleted since."""
        return len(self._last)

    def __enter__(self) -> FlowMaps:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._flows_fd.close()
        self._counters_fd.close()

    def read(self) -> MapChanges:
        """What changed since the previous read (the first: every entry)."""
        self._created = self._counter(_CREATED)  # before the read: `may_overflow` over-counts
        current = self._read_raw(delete=False)
        last, self._last = self._last, current
        get = last.get
        moved = [(k, v) for k, v in current.items() if get(k) != v]
        gone = [key for raw in sorted(last.keys() - current.keys()) if (key := self._forget(raw))]
        return MapChanges(self._decoded(moved), gone)

    def current(self) -> dict[FlowKey, FlowCounters]:
        """Every entry of the last read (less those deleted since), decoded."""
        return self._decoded(self._last.items())

    def take(self, keys: Iterable[FlowKey]) -> dict[FlowKey, FlowCounters]:
        """Delete these entries (of those this map holds), with their final counters; an
        entry the LRU dropped meanwhile is left out."""
        value = ctypes.create_string_buffer(self._flows_fd.value_size)
        out: dict[FlowKey, FlowCounters] = {}
        deleted = 0
        for key in keys:
            raw = self._raw.get(key)
            if raw is None:
                continue
            self._forget(raw)
            del self._last[raw]
            if self._flows_fd.lookup_and_delete(raw, value):
                deleted += 1
                total = self._total(value.raw)
                if total is not None:
                    out[key] = total
        self._add_deleted(deleted)
        return out

    def drain(self) -> dict[FlowKey, FlowCounters]:
        """Delete every entry; each one's final counters."""
        final = self._read_raw(delete=True)
        if not self.batches:  # read key by key: delete them the same way
            buffer = ctypes.create_string_buffer(self._flows_fd.value_size)
            final = {
                raw: buffer.raw for raw in final if self._flows_fd.lookup_and_delete(raw, buffer)
            }
        self._add_deleted(len(final))
        out = self._decoded(final.items())
        self._last, self._keys, self._raw = {}, {}, {}
        return out

    def least_recent(self, n: int) -> list[FlowKey]:
        """The `n` entries whose last packet is the oldest (of the last read)."""
        if n <= 0:
            return []
        last_seen = ((self._total(v), raw) for raw, v in self._last.items())
        oldest = heapq.nsmallest(n, ((t.last_ns, raw) for t, raw in last_seen if t is not None))
        return [self._key(raw) for _, raw in oldest]

    def may_overflow(self, level: float) -> bool:
        """Whether the map may hold more than `level` of its entries now: the last read's
        entries plus every flow created since (an upper bound: the LRU may have dropped some)."""
        created = self._counter(_CREATED) - self._created
        return self.live + created > level * self.flows.max_entries

    def counters(self, live: int) -> dict[str, int]:
        """The per-reason counters summed over CPUs, and `evicted` given `live` entries."""
        return _counters(self._counters_fd, live)

    def _read_raw(self, *, delete: bool) -> dict[bytes, bytes]:
        ksize, vsize = self.flows.key_size, self._flows_fd.value_size
        batches = self._flows_fd.batches(delete=delete) if self.batches else None
        if batches is None:
            self.batches = False
            return dict(self._flows_fd.one_by_one())
        out: dict[bytes, bytes] = {}
        for keys, values in batches:
            out.update(
                zip(
                    [keys[i : i + ksize] for i in range(0, len(keys), ksize)],
                    [values[i : i + vsize] for i in range(0, len(values), vsize)],
                    strict=True,
                )
            )
        return out

    def _decoded(self, entries: Iterable[tuple[bytes, bytes]]) -> dict[FlowKey, FlowCounters]:
        """Raw entries as FlowKey -> counters summed over CPUs; an entry no CPU counted a
        packet in yet is no flow until one does."""
        out: dict[FlowKey, FlowCounters] = {}
        for raw, value in entries:
            total = self._total(value)
            if total is not None:
                out[self._key(raw)] = total
        return out

    def _key(self, raw: bytes) -> FlowKey:
        key = self._keys.get(raw)
        if key is None:
            key = self._keys[raw] = flow_key(raw)
            self._raw[key] = raw
        return key

    def _forget(self, raw: bytes) -> FlowKey | None:
        key = self._keys.pop(raw, None)
        if key is not None:
            del self._raw[key]
        return key

    def _counter(self, index: int) -> int:
        return _counter_sum(self._counters_fd, index)

    def _add_deleted(self, n: int) -> None:
        cpus = _counter_cpus(self._counters_fd, _DELETED) if n else None
        if cpus is None:
            return
        cpus[0] += n
        self._counters_fd.update(_U32.pack(_DELETED), b"".join(_U64.pack(c) for c in cpus))


def _counter_cpus(fd: MapFd, index: int) -> list[int] | None:
    value = fd.lookup(_U32.pack(index))
    if value is None:
        return None  # a program older than this counter
    return [c for (c,) in _U64.iter_unpack(value)]


def _counter_sum(fd: MapFd, index: int) -> int:
    cpus = _counter_cpus(fd, index)
    return sum(cpus) if cpus is not None else 0


def _counters(fd: MapFd, live: int) -> dict[str, int]:
    out = {name: _counter_sum(fd, i) for i, name in enumerate(COUNTERS)}
    out["evicted"] = max(0, out["flows_created"] - live - out["flows_deleted"])
    return out


def map_usage(directory: Path) -> list[tuple[MapInfo, int]]:
    """Every map pinned in an object's directory and its entries in use (arrays: their
    size), by name."""
    lib = libbpf()
    cpus = possible_cpus(lib)
    out = []
    for path in sorted(directory.glob(f"{MAP_PREFIX}*")):
        fd = open_map(lib, path, MAP_PREFIX, cpus)
        try:
            out.append((fd.info, fd.count()))
        finally:
            fd.close()
    return out


def read_counters(directory: Path, live_flows: int) -> dict[str, int]:
    """An object's per-reason counters (and `evicted`, given the flow map's live entries)."""
    lib = libbpf()
    fd = open_map(lib, directory / f"{MAP_PREFIX}counters", MAP_PREFIX, possible_cpus(lib))
    try:
        return _counters(fd, live_flows)
    finally:
        fd.close()


def flow_objects(
    node: str, bpffs: str = BPFFS, namespaces: Collection[str] | None = None
) -> list[Path]:
    """The directories of every object `node` pinned in `namespaces` (None: in any) that
    has a flow map, sorted."""
    root = Path(node_root(node, bpffs))
    if not root.is_dir():
        return []
    out = []
    for ns_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if namespaces is not None and ns_dir.name not in namespaces:
            continue
        for obj in sorted(ns_dir.iterdir()):
            if parse_object_name(obj.name) and (obj / f"{MAP_PREFIX}flows").exists():
                out.append(obj)
    return out


def node_flow_maps(
    node: str, bpffs: str = BPFFS, namespaces: Collection[str] | None = None
) -> list[FlowMaps]:
    """The flow maps of every object `node` pinned in `namespaces` (None: in any), opened;
    sorted by path."""
    out: list[FlowMaps] = []
    try:
        for obj in flow_objects(node, bpffs, namespaces):
            out.append(FlowMaps(obj))
    except BaseException:
        for maps in out:
            maps.close()
        raise
    return out
