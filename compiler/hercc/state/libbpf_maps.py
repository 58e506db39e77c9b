"""Pinned BPF maps opened by path and read through libbpf (libbpf.so.1) with ctypes.

What state/flow_maps.py needs of a map, each call one bpf(2) syscall:

* `open_map`: bpf_obj_get and the map's info (type, sizes, max_entries);
* `batches`: every entry, BATCH at a time, as whole buffers of keys and of
  values (bpf_map_lookup_batch; with `delete`,
  bpf_map_lookup_and_delete_batch, which empties the map as it goes). None
  when the kernel refuses batches for the map; `one_by_one` then walks it
  with bpf_map_get_next_key and bpf_map_lookup_elem;
* `MapFd.lookup_and_delete`, `lookup`, `update`: one entry.

A per-CPU map's value is its value size rounded up to 8 bytes, times the
possible CPUs (`possible_cpus`). `Libbpf` is the library, or anything with
its functions (tests count the calls).

`libbpf()` is the one place hercc loads the library: state/bpf_pins.py
(pins, route maps) and state/dataplane.py (BPF_PROG_TEST_RUN) call it too,
and `check` turns its negative returns into a DataplaneError for all of them.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.state.errors import BccUnavailable, DataplaneError

__all__ = [
    "BATCH",
    "Libbpf",
    "MapFd",
    "MapInfo",
    "check",
    "libbpf",
    "open_map",
    "possible_cpus",
]

BATCH = 4096
_INFO = struct.Struct("=IIIII")  # struct bpf_map_info: type, id, key_size, value_size, max_entries
_INFO_SIZE = 256
_ENOTSUPP = 524  # the kernel's own "not supported", which errno does not name
_REFUSED = (errno.EINVAL, _ENOTSUPP, errno.EOPNOTSUPP)

Libbpf = Any  # ctypes.CDLL("libbpf.so.1") with the argtypes below, or a stand-in


@functools.cache
def libbpf() -> Libbpf:
    """libbpf.so.1 (libbcc links it), loaded once, typed for every call hercc makes."""
    try:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError as exc:
        raise BccUnavailable(f"libbpf.so.1: {exc}") from None
    vp, u32p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)
    lib.bpf_obj_get.argtypes = [ctypes.c_char_p]
    lib.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, vp, u32p]
    lib.bpf_map_get_next_key.argtypes = [ctypes.c_int, vp, vp]
    lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, vp, vp]
    lib.bpf_map_lookup_and_delete_elem.argtypes = [ctypes.c_int, vp, vp]
    lib.bpf_map_update_elem.argtypes = [ctypes.c_int, vp, vp, ctypes.c_uint64]
    lib.bpf_map_lookup_batch.argtypes = [ctypes.c_int, vp, vp, vp, vp, u32p, vp]
    lib.bpf_map_lookup_and_delete_batch.argtypes = [ctypes.c_int, vp, vp, vp, vp, u32p, vp]
    lib.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, vp]  # state/dataplane.ProgTestRunOpts
    return lib


def possible_cpus(lib: Libbpf) -> int:
    cpus = int(lib.libbpf_num_possible_cpus())
    if cpus <= 0:
        raise DataplaneError("cannot tell how many CPUs are possible")
    return cpus


def _errno(rc: int) -> int:
    return -rc if rc < -1 else ctypes.get_errno()


def check(rc: int, what: str) -> int:
    """`rc`, a libbpf call's return, when it is not an error."""
    if rc < 0:
        raise DataplaneError(f"{what}: {os.strerror(_errno(rc))}")
    return rc


@dataclass(frozen=True)
class MapInfo:
    name: str
    map_id: int
    max_entries: int
    key_size: int
    value_size: int


class MapFd:
    """An open map: its file descriptor (`close` it) and its info."""

    def __init__(self, lib: Libbpf, fd: int, info: MapInfo, path: Path, cpus: int | None) -> None:
        """`cpus`: the possible CPUs of a per-CPU map; None for another kind."""
        self.lib, self.fd, self.info, self.path = lib, fd, info, path
        size = info.value_size
        self.value_size = size if cpus is None else (size + 7) // 8 * 8 * cpus

    def close(self) -> None:
        os.close(self.fd)

    def lookup(self, key: bytes) -> bytes | None:
        value = ctypes.create_string_buffer(self.value_size)
        return value.raw if self.lib.bpf_map_lookup_elem(self.fd, key, value) == 0 else None

    def update(self, key: bytes, value: bytes) -> None:
        check(self.lib.bpf_map_update_elem(self.fd, key, value, 0), f"{self.path}: update")

    def lookup_and_delete(self, key: bytes, value: ctypes.Array[ctypes.c_char]) -> bool:
        """Delete the entry of `key`, its value into `value`; False when it was not there."""
        return bool(self.lib.bpf_map_lookup_and_delete_elem(self.fd, key, value) == 0)

    def batches(self, *, delete: bool = False) -> Iterator[tuple[bytes, bytes]] | None:
        """Every entry in batches: (keys, values), each the entries' bytes back to back;
        with `delete`, each batch deleted as it is read. None when batches are refused."""
        call = self.lib.bpf_map_lookup_and_delete_batch if delete else self.lib.bpf_map_lookup_batch
        keys = ctypes.create_string_buffer(self.info.key_size * BATCH)
        values = ctypes.create_string_buffer(self.value_size * BATCH)
        token_in, token_out = ctypes.create_string_buffer(8), ctypes.create_string_buffer(8)
        count = ctypes.c_uint32(BATCH)
        rc = call(self.fd, None, token_out, keys, values, ctypes.byref(count), None)
        code = _errno(rc) if rc < 0 else 0
        if code in _REFUSED:
            return None
        return self._batches(call, (keys, values, token_in, token_out, count), code)

    def _batches(
        self, call: Any, buffers: tuple[Any, ...], code: int
    ) -> Iterator[tuple[bytes, bytes]]:
        keys, values, token_in, token_out, count = buffers
        ksize, vsize = self.info.key_size, self.value_size
        while True:
            if code not in (0, errno.ENOENT):
                raise DataplaneError(f"{self.path}: reading the map: {os.strerror(code)}")
            n = count.value
            if n:
                yield ctypes.string_at(keys, n * ksize), ctypes.string_at(values, n * vsize)
            if code == errno.ENOENT:  # the last batch
                return
            ctypes.memmove(token_in, token_out, 8)
            count.value = BATCH
            rc = call(self.fd, token_in, token_out, keys, values, ctypes.byref(count), None)
            code = _errno(rc) if rc < 0 else 0

    def one_by_one(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry by bpf_map_get_next_key and bpf_map_lookup_elem (two syscalls each)."""
        value = ctypes.create_string_buffer(self.value_size)
        for key in self._keys():
            if self.lib.bpf_map_lookup_elem(self.fd, key, value) == 0:
                yield key.raw, value.raw  # gone meanwhile: left out

    def count(self) -> int:
        """Entries in use, key by key (arrays: their size)."""
        return sum(1 for _ in self._keys())

    def _keys(self) -> Iterator[ctypes.Array[ctypes.c_char]]:
        """Every key, by bpf_map_get_next_key (each a buffer of its own)."""
        ksize = self.info.key_size
        key, nxt = None, ctypes.create_string_buffer(ksize)
        while self.lib.bpf_map_get_next_key(self.fd, key, nxt) == 0:
            key = ctypes.create_string_buffer(nxt.raw, ksize)
            yield key


def open_map(lib: Libbpf, path: Path, prefix: str, cpus: int) -> MapFd:
    """The map pinned at `path` (its name: the file's, less `prefix`)."""
    fd = lib.bpf_obj_get(str(path).encode())
    check(fd, f"open {path}")
    buf = ctypes.create_string_buffer(_INFO_SIZE)
    size = ctypes.c_uint32(_INFO_SIZE)
    rc = lib.bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size))
    if rc < 0:
        os.close(fd)
        check(rc, f"map info of {path}")
    kind, map_id, key_size, value_size, max_entries = _INFO.unpack_from(buf.raw)
    info = MapInfo(path.name[len(prefix) :], map_id, max_entries, key_size, value_size)
    return MapFd(lib, fd, info, path, cpus if kind in _PER_CPU_TYPES else None)


# BPF_MAP_TYPE_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH, _PERCPU_CGROUP_STORAGE
_PER_CPU_TYPES = (5, 6, 10, 21)
