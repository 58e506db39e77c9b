"""The dataplane's programs in the kernel: compiled and loaded with BCC, their maps
filled and read, and run on a packet through BPF_PROG_TEST_RUN.

BCC (Debian's python3-bpfcc; never the unrelated PyPI "bcc") is imported
only here and only when a program is compiled: a build, and every command
that loads nothing, works without it. It needs kernel headers: the
directory in $BCC_KERNEL_SOURCE, or else KERNEL_HEADERS, where
scripts/install-debian-packages.sh merges Debian's.

bcc 0.26 has no test-run call, so `LoadedProgram.test_run` calls libbpf's
`bpf_prog_test_run_opts` (libbpf.so.1, which libbcc links) through ctypes.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.dataplane.layout import COUNTERS, FLOW_KEY, FLOW_VALUE, route_entry
from hercc.dataplane.program import SOURCE_DIR, Program, program_text
from hercc.flows.records import Direction, FlowCounters, FlowKey
from hercc.state.errors import BccUnavailable, DataplaneError
from hercc.state.libbpf_maps import libbpf

__all__ = [
    "KERNEL_HEADERS",
    "FlowEntry",
    "LoadedProgram",
    "ProgTestRunOpts",
    "ProgramRun",
    "compile_program",
    "flow_entry",
    "flow_key",
]

# one entry of the flow map: its key, and each CPU's counters (hercc.flows.records)
FlowEntry = tuple[FlowKey, list[FlowCounters]]

KERNEL_HEADERS = "/var/cache/hercules/kernel-headers"
_OUT_ROOM = 512  # room in the output buffer for headers a program pushes
# struct __sk_buff (uapi/linux/bpf.h): its size and the offsets of the two fields
# a TC test run is given, to make the packet a GSO packet of that many segments.
_SK_BUFF_SIZE = 192
_SK_BUFF_GSO_SEGS = 164
_SK_BUFF_GSO_SIZE = 176


@dataclass(frozen=True)
class ProgramRun:
    """What one BPF_PROG_TEST_RUN returned: the verdict and the packet as the program left it."""

    verdict: int
    packet: bytes
    duration_ns: int


class ProgTestRunOpts(ctypes.Structure):
    """libbpf's struct bpf_test_run_opts (libbpf 1.x), up to batch_size."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _XdpMd(ctypes.Structure):
    """struct xdp_md, the context an XDP test run may be given."""

    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


def _import_bcc() -> Any:
    try:
        import bcc  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        raise BccUnavailable(
            f"BCC is not importable ({exc}): install python3-bpfcc and link it into the venv "
            "(make setup: scripts/bcc-venv-link.sh)"
        ) from None
    return bcc


def _kernel_bpf() -> None:
    """The bpf(2) syscall exists when the kernel has this sysctl (CONFIG_BPF_SYSCALL)."""
    if not Path("/proc/sys/kernel/unprivileged_bpf_disabled").exists():
        raise BccUnavailable("this kernel has no BPF syscall (CONFIG_BPF_SYSCALL)")


def _kernel_headers() -> None:
    """BCC finds headers through $BCC_KERNEL_SOURCE or /lib/modules; default the former."""
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return
    if Path(f"/lib/modules/{os.uname().release}/build").is_dir():
        return
    if not Path(KERNEL_HEADERS).is_dir():
        raise BccUnavailable(
            f"no kernel headers for BCC: set BCC_KERNEL_SOURCE, or run "
            f"scripts/install-debian-packages.sh (it merges them into {KERNEL_HEADERS})"
        )
    os.environ["BCC_KERNEL_SOURCE"] = KERNEL_HEADERS


def _read_source(source_dir: Path) -> Any:
    def read(name: str) -> str:
        try:
            return (source_dir / name).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataplaneError(
                f"dataplane source {source_dir / name}: {exc.strerror} "
                "(hercc finds dataplane/ through hercc/dataplane/sources)"
            ) from None

    return read


def compile_program(program: Program, header: str, source_dir: Path = SOURCE_DIR) -> LoadedProgram:
    """Compile `program` with the generated `header` and load its entry points.

    Raises BccUnavailable when BCC or kernel headers are missing, DataplaneError
    when the program does not compile or the verifier refuses it.
    """
    text = program_text(program, header, _read_source(source_dir))
    bcc = _import_bcc()
    _kernel_bpf()
    _kernel_headers()
    kind = bcc.BPF.XDP if program.hook == "xdp" else bcc.BPF.SCHED_CLS
    try:
        bpf = bcc.BPF(text=text.encode())
        fds = {entry: bpf.load_func(entry.encode(), kind).fd for entry in program.entries}
    except Exception as exc:  # bcc raises plain Exception for compile and verifier errors
        raise DataplaneError(f"{program.source}: {exc}") from None
    return LoadedProgram(bpf, program, fds)


class LoadedProgram:
    """One compiled program: its entry points (file descriptors) and its maps."""

    def __init__(self, bpf: Any, program: Program, fds: Mapping[str, int]) -> None:
        self._bpf = bpf
        self.program = program
        self.fds = dict(fds)

    def table(self, name: str) -> Any:
        """A BCC table of the program by name (routes4, routes6, flows, counters)."""
        try:
            return self._bpf.get_table(name.encode())
        except KeyError:
            raise DataplaneError(f"{self.program.source} has no map {name}") from None

    def fill_routes(
        self, routes: Sequence[Mapping[str, Any]], interfaces: Mapping[str, tuple[int, int]]
    ) -> None:
        """Put maps.json's routes of one namespace into the LPM tries.

        `interfaces`: interface name -> (ifindex, layer) on this machine.
        """
        tries = {4: self.table("routes4"), 6: self.table("routes6")}
        for route in routes:
            name = route["interface"]
            if name is None:
                ifindex, layer = 0, 0
            elif name in interfaces:
                ifindex, layer = interfaces[name]
            else:
                raise DataplaneError(f"route {route['prefix']}: no interface {name}")
            version, key, value = route_entry(route, ifindex, layer)
            trie = tries[version]
            trie[trie.Key.from_buffer_copy(key)] = trie.Leaf.from_buffer_copy(value)

    def flows(self) -> list[FlowEntry]:
        """Every entry of the flow map with each CPU's counters: what the exporter
        (hercc.flows) takes as a snapshot, and `records.merge` sums."""
        table = self.table("flows")
        if ctypes.sizeof(table.Key) != FLOW_KEY.size:
            raise DataplaneError("flows: the key layout differs from hercc.dataplane.layout")
        return [flow_entry(bytes(key), _per_cpu(values)) for key, values in table.items()]

    def counters(self) -> dict[str, int]:
        """The per-reason counters, summed over CPUs."""
        table = self.table("counters")
        return {name: int(table.sum(table.Key(i)).value) for i, name in enumerate(COUNTERS)}

    def test_run(
        self, entry: str, packet: bytes, *, ingress_ifindex: int = 0, gso_segs: int = 0,
        gso_size: int = 0, repeat: int = 1,
    ) -> ProgramRun:  # fmt: skip
        """Run entry point `entry` once on `packet` (an Ethernet frame) with BPF_PROG_TEST_RUN.

        The program runs in the calling thread's network namespace. XDP:
        `ingress_ifindex` names the device the frame arrives on there (0: lo).
        TC: `gso_segs` and `gso_size` make the packet a GSO packet. With
        `repeat`, the kernel runs it that many times (the maps see every run)
        and `duration_ns` is the mean time of one; they all run on the same packet,
        so a forwarded one loses one TTL a run.
        """
        data_in = ctypes.create_string_buffer(packet, len(packet))
        data_out = ctypes.create_string_buffer(len(packet) + _OUT_ROOM)
        opts = ProgTestRunOpts(
            sz=ctypes.sizeof(ProgTestRunOpts),
            data_in=ctypes.cast(data_in, ctypes.c_void_p),
            data_out=ctypes.cast(data_out, ctypes.c_void_p),
            data_size_in=len(packet),
            data_size_out=len(data_out),
            repeat=repeat,
        )
        ctx: ctypes.Array[ctypes.c_char] | _XdpMd | None = None
        if self.program.hook == "xdp" and ingress_ifindex:
            ctx = _XdpMd(data=0, data_end=len(packet), ingress_ifindex=ingress_ifindex)
        elif self.program.hook == "tc" and gso_segs:
            ctx = ctypes.create_string_buffer(_SK_BUFF_SIZE)
            struct.pack_into("=I", ctx, _SK_BUFF_GSO_SEGS, gso_segs)
            struct.pack_into("=I", ctx, _SK_BUFF_GSO_SIZE, gso_size)
        if ctx is not None:
            opts.ctx_in = ctypes.cast(ctypes.pointer(ctx), ctypes.c_void_p)
            opts.ctx_size_in = ctypes.sizeof(ctx)
        rc = libbpf().bpf_prog_test_run_opts(self.fds[entry], ctypes.byref(opts))
        if rc != 0:
            raise DataplaneError(f"BPF_PROG_TEST_RUN of {entry}: {os.strerror(-rc)}")
        return ProgramRun(opts.retval, data_out.raw[: opts.data_size_out], opts.duration)

    def close(self) -> None:
        """Unload the programs and free the maps (nothing attached keeps them)."""
        self._bpf.cleanup()


def flow_entry(key: bytes, per_cpu: Iterable[bytes]) -> FlowEntry:
    """A flow map entry from its raw key and per-CPU values (dataplane/account.h's layout)."""
    return flow_key(key), [FlowCounters(*FLOW_VALUE.unpack(raw)) for raw in per_cpu]


_DIRECTIONS = tuple(Direction)


@functools.lru_cache(maxsize=1 << 16)
def _address(packed: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(packed)  # flows share addresses: each is made once


def flow_key(key: bytes) -> FlowKey:
    """A flow map's raw key as a FlowKey (the key half of `flow_entry`)."""
    saddr, daddr, sport, dport, ifindex, proto, family, direction = FLOW_KEY.unpack(key)
    size = 4 if family == 4 else 16
    return FlowKey(
        src=_address(saddr[:size]),
        dst=_address(daddr[:size]),
        src_port=sport,
        dst_port=dport,
        protocol=proto,
        ifindex=ifindex,
        direction=_DIRECTIONS[direction],  # Direction(n) costs a tenth of the whole
    )


def _per_cpu(values: Any) -> Iterator[bytes]:
    for value in values:
        yield bytes(value)
