"""The dataplane's pinned objects on the bpffs: pinned, listed, filled, unpinned, attached.

Through libbpf (libbpf.so.1, which libcc links) with ctypes: bpf_obj_pin,
bpf_obj_get, bpf_obj_get_info_by_fd (a program's id; a map's max_entries),
bpf_map_update_elem. The layout of a pinned object is dataplane/attach.py's.

bpffs refuses names with a dot: pins are `prog_<entry>` and `map_<name>`.
`ip -n`/`tc -n` remount /sys in a namespace of their own, where the bpffs
at /sys/fs/bpf is not: programs are attached from this process, by file
descriptor, through pyroute2 in the target namespace (`attach_tc`,
`attach_xdp`); detaching needs no pin and is left to `tc` and `ip`.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.dataplane.attach import MAP_PREFIX, PROG_PREFIX, parse_object_name
from hercc.dataplane.layout import route_entry
from hercc.state.errors import DataplaneError
from hercc.state.libbpf_maps import check, libbpf

__all__ = [
    "MAP_NAMES",
    "PinnedObject",
    "attach_tc",
    "attach_xdp",
    "fill_routes",
    "pin_loaded",
    "pinned_objects",
    "unpin",
]

MAP_NAMES = ("routes4", "routes6", "counters", "flows")
_INFO_SIZE = 256
_PROG_ID_OFFSET = 4  # struct bpf_prog_info: type, id
_MAP_MAX_ENTRIES_OFFSET = 16  # struct bpf_map_info: type, id, key_size, value_size, max_entries
TC_INGRESS_PARENT = 0xFFFFFFF2
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4


@dataclass(frozen=True)
class PinnedObject:
    """One pinned object: its directory's hook and digest, its programs and map sizes."""

    name: str
    hook: str
    digest: str
    programs: Mapping[str, int]  # entry point -> program id
    map_sizes: Mapping[str, int]  # map name -> max_entries


def _open(path: Path) -> int:
    return check(libbpf().bpf_obj_get(str(path).encode()), f"open {path}")


def _info_u32(fd: int, offset: int) -> int:
    buf = ctypes.create_string_buffer(_INFO_SIZE)
    size = ctypes.c_uint32(_INFO_SIZE)
    check(libbpf().bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size)), "object info")
    return int(struct.unpack_from("=I", buf.raw, offset)[0])


def _read_u32(path: Path, offset: int) -> int:
    fd = _open(path)
    try:
        return _info_u32(fd, offset)
    finally:
        os.close(fd)


def pinned_objects(root: Path) -> list[PinnedObject]:
    """The objects pinned under `root` (dataplane/attach.py pin_root); none when it is absent."""
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        parsed = parse_object_name(d.name)
        if parsed is None or not d.is_dir():
            continue
        programs, sizes = {}, {}
        for f in sorted(d.iterdir()):
            if f.name.startswith(PROG_PREFIX):
                programs[f.name[len(PROG_PREFIX) :]] = _read_u32(f, _PROG_ID_OFFSET)
            elif f.name.startswith(MAP_PREFIX):
                sizes[f.name[len(MAP_PREFIX) :]] = _read_u32(f, _MAP_MAX_ENTRIES_OFFSET)
        out.append(PinnedObject(d.name, parsed[0], parsed[1], programs, sizes))
    return out


def pin_loaded(loaded: Any, directory: Path) -> None:
    """Pin a LoadedProgram's entry points and maps into `directory` (made here)."""
    lib = libbpf()
    directory.mkdir(parents=True)
    for entry, fd in sorted(loaded.fds.items()):
        check(lib.bpf_obj_pin(fd, str(directory / f"{PROG_PREFIX}{entry}").encode()), entry)
    for name in MAP_NAMES:
        try:
            table = loaded.table(name)
        except DataplaneError:
            continue  # no flow map without accounting
        path = directory / f"{MAP_PREFIX}{name}"
        check(lib.bpf_obj_pin(table.map_fd, str(path).encode()), name)


def fill_routes(
    directory: Path, routes: Sequence[Mapping[str, Any]], interfaces: Mapping[str, tuple[int, int]]
) -> None:
    """Write maps.json's routes into the pinned tries; `interfaces`: name -> (ifindex, layer)."""
    lib = libbpf()
    fds = {v: _open(directory / f"{MAP_PREFIX}routes{v}") for v in (4, 6)}
    try:
        for route in routes:
            name = route["interface"]
            if name is not None and name not in interfaces:
                raise DataplaneError(f"route {route['prefix']}: no interface {name}")
            ifindex, layer = (0, 0) if name is None else interfaces[name]
            version, key, value = route_entry(route, ifindex, layer)
            check(lib.bpf_map_update_elem(fds[version], key, value, 0), f"route {route['prefix']}")
    finally:
        for fd in fds.values():
            os.close(fd)


def unpin(directory: Path) -> Callable[[], None]:
    """Remove a pinned object's directory; what it returns pins it again (fds held meanwhile)."""
    held = {f.name: _open(f) for f in sorted(directory.iterdir())}
    for name in held:
        (directory / name).unlink()
    directory.rmdir()

    def repin() -> None:
        directory.mkdir(parents=True)
        for name, fd in held.items():
            check(libbpf().bpf_obj_pin(fd, str(directory / name).encode()), name)

    return repin


def _ipr(ns: str) -> Any:
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    return IPRoute(netns=ns, flags=0)


def _index(ipr: Any, ns: str, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise DataplaneError(f"no interface {ifname} in namespace {ns}")
    return int(found[0])


def attach_tc(ns: str, ifname: str, program: Path) -> None:
    """A direct-action bpf filter with the pinned `program` on IF's ingress (clsact made if
    missing)."""
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    fd = _open(program)
    try:
        with _ipr(ns) as ipr:
            index = _index(ipr, ns, ifname)
            try:
                ipr.tc("add", "clsact", index)
            except NetlinkError as exc:
                if exc.code != 17:  # EEXIST: there is one already
                    raise DataplaneError(f"clsact on {ifname} in {ns}: {exc}") from None
            name = program.name[len(PROG_PREFIX) :]
            try:
                ipr.tc("add-filter", "bpf", index, ":1", fd=fd, name=name,
                       parent=TC_INGRESS_PARENT, classid=1, direct_action=True)  # fmt: skip
            except NetlinkError as exc:
                raise DataplaneError(f"tc filter on {ifname} in {ns}: {exc}") from None
    finally:
        os.close(fd)


def attach_xdp(ns: str, ifname: str, program: Path, *, native: bool = False) -> None:
    """The pinned XDP `program` on IF, in native (driver) mode when `native`, else generic;
    the kernel's refusal of native mode is an error, never a silent generic attachment."""
    from pyroute2.netlink.exceptions import NetlinkError

    fd = _open(program)
    try:
        with _ipr(ns) as ipr:
            index = _index(ipr, ns, ifname)
            flags = XDP_FLAGS_DRV_MODE if native else XDP_FLAGS_SKB_MODE
            attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]
            try:
                ipr.link("set", index=index, xdp={"attrs": attrs})
            except NetlinkError as exc:
                mode = "native" if native else "generic"
                raise DataplaneError(f"{mode} XDP on {ifname} in {ns}: {exc}") from None
    finally:
        os.close(fd)
