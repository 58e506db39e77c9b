"""A node's pinned flow and counter maps, opened by path from any process (the exporter's).

The dataplane pins each object's maps under
`<BPFFS>/hercules/<node>/<NS>/<hook>-<digest>/` (dataplane/attach.py);
`node_flow_maps` opens every object of a node that has a flow map. Through
libbpf (libbpf.so.1) with ctypes, as state/bpf_pins.py does:

* `entries`: the flow map's entries with the counters of each CPU that saw
  the flow (keys decoded by state/dataplane.py's `flow_key`, once per entry's
  life: a caller that polls hands the same `known` dict back each time). A
  per-CPU map's value is its value size rounded up to 8 bytes, times the
  possible CPUs, unpacked in one pass (`FLOW_VALUE.iter_unpack`). Read with
  bpf_map_lookup_batch (one syscall per BATCH entries instead of two per
  entry: 60,000 flows in a few milliseconds), or key by key with
  bpf_map_get_next_key and bpf_map_lookup_elem where batches are refused.
* `take`: bpf_map_lookup_and_delete_elem (hash maps, Linux 5.14): an entry
  leaves the map with its final counters, so packets that came after the
  last snapshot are exported, not lost. What it deleted is added to the
  counters map's `flows_deleted` (CPU 0's slot; no program writes it).
* `counters`: the per-reason counters summed over CPUs, and `evicted`
  worked out from them (dataplane/account.h): flows created, minus the live
  entries, minus those the exporter deleted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.dataplane.attach import BPFFS, MAP_PREFIX, node_root, parse_object_name
from hercc.dataplane.layout import COUNTERS, FLOW_KEY, FLOW_VALUE
from hercc.flows.records import FlowCounters, FlowKey
from hercc.state.dataplane import FlowEntry, flow_key
from hercc.state.errors import BccUnavailable, DataplaneError

__all__ = ["BATCH", "FlowMaps", "MapInfo", "map_usage", "node_flow_maps", "read_counters"]

BATCH = 4096
_INFO = struct.Struct("=IIIII")  # struct bpf_map_info: type, id, key_size, value_size, max_entries
_INFO_SIZE = 256
_U64 = struct.Struct("=Q")
_DELETED = COUNTERS.index("flows_deleted")
_ENOTSUPP = 524  # the kernel's own "not supported", which errno does not name


@dataclass(frozen=True)
class MapInfo:
    name: str
    map_id: int
    max_entries: int
    key_size: int
    value_size: int


def _lib() -> Any:
    try:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError as exc:
        raise BccUnavailable(f"libbpf.so.1: {exc}") from None
    vp, u32p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)
    lib.bpf_obj_get.argtypes = [ctypes.c_char_p]
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, vp, u32p]
    lib.bpf_map_get_next_key.argtypes = [ctypes.c_int, vp, vp]
    lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, vp, vp]
    lib.bpf_map_lookup_and_delete_elem.argtypes = [ctypes.c_int, vp, vp]
    lib.bpf_map_update_elem.argtypes = [ctypes.c_int, vp, vp, ctypes.c_uint64]
    lib.bpf_map_lookup_batch.argtypes = [ctypes.c_int, vp, vp, vp, vp, u32p, vp]
    return lib


def _errno(rc: int) -> int:
    return -rc if rc < -1 else ctypes.get_errno()


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise DataplaneError(f"{what}: {os.strerror(_errno(rc))}")


def _open(lib: Any, path: Path) -> tuple[int, MapInfo]:
    fd = lib.bpf_obj_get(str(path).encode())
    _check(fd, f"open {path}")
    buf = ctypes.create_string_buffer(_INFO_SIZE)
    size = ctypes.c_uint32(_INFO_SIZE)
    rc = lib.bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size))
    if rc < 0:
        os.close(fd)
        _check(rc, f"map info of {path}")
    _, map_id, key_size, value_size, max_entries = _INFO.unpack_from(buf.raw)
    name = path.name[len(MAP_PREFIX) :]
    return fd, MapInfo(name, map_id, max_entries, key_size, value_size)


class FlowMaps:
    """The flow map and the counters of one pinned object (the module docstring).

    Holds two file descriptors: `close` it (or use it as a context manager).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lib = _lib()
        self._cpus = int(self._lib.libbpf_num_possible_cpus())
        if self._cpus <= 0:
            raise DataplaneError("cannot tell how many CPUs are possible")
        self._flows_fd, self.flows = _open(self._lib, directory / f"{MAP_PREFIX}flows")
        try:
            self._counters_fd, self.counters_map = _open(
                self._lib, directory / f"{MAP_PREFIX}counters"
            )
        except DataplaneError:
            os.close(self._flows_fd)
            raise
        if (self.flows.key_size, self.flows.value_size) != (FLOW_KEY.size, FLOW_VALUE.size):
            self.close()
            raise DataplaneError(f"{directory}: the flow map's layout differs from hercc's")
        self._raw: dict[FlowKey, bytes] = {}  # the last read's keys as the map holds them
        self._batches = True

    @property
    def name(self) -> str:
        """The object: "<NS>/<hook>-<digest>"."""
        return f"{self.directory.parent.name}/{self.directory.name}"

    def __enter__(self) -> FlowMaps:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._flows_fd, self._counters_fd):
            os.close(fd)

    def _stride(self, value_size: int) -> int:
        return (value_size + 7) // 8 * 8

    def _counters(self, raw: bytes) -> list[FlowCounters]:
        """Each CPU's counters in a per-CPU value, those of CPUs that never saw the flow
        left out (as `records.sum_cpus` would)."""
        return [FlowCounters(*v) for v in FLOW_VALUE.iter_unpack(raw) if v[0]]

    def entries(self, known: dict[bytes, FlowKey] | None = None) -> list[FlowEntry]:
        """Every entry of the flow map with its CPUs' counters. `known`: raw key -> FlowKey
        from the previous call, updated to this one's keys (decoding them is most of the cost)."""
        pairs = self._batch() if self._batches else None
        if pairs is None:
            self._batches = False
            pairs = list(self._one_by_one())
        before = known.copy() if known is not None else {}
        if known is not None:
            known.clear()
        out: list[FlowEntry] = []
        self._raw = {}
        for raw, value in pairs:
            key = before.get(raw) or flow_key(raw)
            if known is not None:
                known[raw] = key
            self._raw[key] = raw
            out.append((key, self._counters(value)))
        return out

    def _batch(self) -> list[tuple[bytes, bytes]] | None:
        """The entries by bpf_map_lookup_batch; None when the kernel refuses batches here."""
        ksize, vsize = self.flows.key_size, self._stride(self.flows.value_size) * self._cpus
        keys = ctypes.create_string_buffer(ksize * BATCH)
        values = ctypes.create_string_buffer(vsize * BATCH)
        token_in, token_out = ctypes.create_string_buffer(8), ctypes.create_string_buffer(8)
        out: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            count = ctypes.c_uint32(BATCH)
            rc = self._lib.bpf_map_lookup_batch(
                self._flows_fd, None if first else token_in, token_out, keys, values,
                ctypes.byref(count), None,
            )  # fmt: skip
            code = _errno(rc) if rc < 0 else 0
            if code not in (0, errno.ENOENT):
                if first and code in (errno.EINVAL, _ENOTSUPP, errno.EOPNOTSUPP):
                    return None
                raise DataplaneError(f"{self.directory}: reading flows: {os.strerror(code)}")
            raw_k, raw_v = keys.raw, values.raw
            out += [
                (raw_k[i * ksize : (i + 1) * ksize], raw_v[i * vsize : (i + 1) * vsize])
                for i in range(count.value)
            ]
            if code == errno.ENOENT:  # the last batch
                return out
            ctypes.memmove(token_in, token_out, 8)
            first = False

    def _one_by_one(self) -> Iterator[tuple[bytes, bytes]]:
        ksize = self.flows.key_size
        value = ctypes.create_string_buffer(self._stride(self.flows.value_size) * self._cpus)
        key, nxt = None, ctypes.create_string_buffer(ksize)
        while self._lib.bpf_map_get_next_key(self._flows_fd, key, nxt) == 0:
            key = ctypes.create_string_buffer(nxt.raw, ksize)
            if self._lib.bpf_map_lookup_elem(self._flows_fd, key, value) == 0:
                yield key.raw, value.raw  # gone meanwhile: left out

    def take(self, keys: Iterable[FlowKey]) -> list[FlowEntry]:
        """Delete these entries (of the last `entries`), with their final counters; an entry
        the LRU dropped meanwhile is left out."""
        value = ctypes.create_string_buffer(self._stride(self.flows.value_size) * self._cpus)
        out: list[FlowEntry] = []
        for key in keys:
            raw = self._raw.pop(key, None)
            if raw is None:
                continue
            if self._lib.bpf_map_lookup_and_delete_elem(self._flows_fd, raw, value) == 0:
                out.append((key, self._counters(value.raw)))
        if out:
            self._add_deleted(len(out))
        return out

    def _counter_cpus(self, index: int) -> list[int] | None:
        return _counter_cpus(self._lib, self._counters_fd, index, self._cpus)

    def _add_deleted(self, n: int) -> None:
        cpus = self._counter_cpus(_DELETED)
        if cpus is None:
            return
        cpus[0] += n
        value = b"".join(_U64.pack(c) for c in cpus)
        key = ctypes.c_uint32(_DELETED)
        rc = self._lib.bpf_map_update_elem(self._counters_fd, ctypes.byref(key), value, 0)
        _check(rc, f"{self.directory}: counting deleted flows")

    def counters(self, live: int) -> dict[str, int]:
        """The per-reason counters summed over CPUs, and `evicted` given `live` entries."""
        return _counters(self._lib, self._counters_fd, self._cpus, live)


def _counter_cpus(lib: Any, fd: int, index: int, cpus: int) -> list[int] | None:
    value = ctypes.create_string_buffer(8 * cpus)
    key = ctypes.c_uint32(index)
    if lib.bpf_map_lookup_elem(fd, ctypes.byref(key), value) != 0:
        return None  # a program older than this counter
    return [_U64.unpack_from(value.raw, 8 * i)[0] for i in range(cpus)]


def _counters(lib: Any, fd: int, cpus: int, live: int) -> dict[str, int]:
    out = {}
    for i, name in enumerate(COUNTERS):
        values = _counter_cpus(lib, fd, i, cpus)
        out[name] = sum(values) if values is not None else 0
    out["evicted"] = max(0, out["flows_created"] - live - out["flows_deleted"])
    return out


def _count(lib: Any, fd: int, key_size: int) -> int:
    key, nxt, n = None, ctypes.create_string_buffer(key_size), 0
    while lib.bpf_map_get_next_key(fd, key, nxt) == 0:
        key = ctypes.create_string_buffer(nxt.raw, key_size)
        n += 1
    return n


def map_usage(directory: Path) -> list[tuple[MapInfo, int]]:
    """Every map pinned in an object's directory and its entries in use (arrays: their
    size), by name."""
    lib = _lib()
    out = []
    for path in sorted(directory.glob(f"{MAP_PREFIX}*")):
        fd, info = _open(lib, path)
        try:
            out.append((info, _count(lib, fd, info.key_size)))
        finally:
            os.close(fd)
    return out


def read_counters(directory: Path, live_flows: int) -> dict[str, int]:
    """An object's per-reason counters (and `evicted`, given the flow map's live entries)."""
    lib = _lib()
    fd, _ = _open(lib, directory / f"{MAP_PREFIX}counters")
    try:
        return _counters(lib, fd, int(lib.libbpf_num_possible_cpus()), live_flows)
    finally:
        os.close(fd)


def node_flow_maps(
    node: str, bpffs: str = BPFFS, namespaces: Collection[str] | None = None
) -> list[FlowMaps]:
    """The flow maps of every object `node` pinned in `namespaces` (None: in any), opened;
    sorted by path."""
    root = Path(node_root(node, bpffs))
    if not root.is_dir():
        return []
    out: list[FlowMaps] = []
    try:
        for ns_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if namespaces is not None and ns_dir.name not in namespaces:
                continue
            for obj in sorted(ns_dir.iterdir()):
                if parse_object_name(obj.name) and (obj / f"{MAP_PREFIX}flows").exists():
                    out.append(FlowMaps(obj))
    except BaseException:
        for maps in out:
            maps.close()
        raise
    return out
