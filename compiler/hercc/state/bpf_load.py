"""What the executor's LinuxSystem does for a `bpf` resource: load and pin, fill, attach, unpin.

Kept here, next to BCC (state/dataplane.py) and the pins (state/bpf_pins.py),
so that plan/executor/system.py only delegates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hercc.dataplane.attach import BPFFS
from hercc.dataplane.program import PROGRAMS
from hercc.state import bpf_pins
from hercc.state.dataplane import compile_program
from hercc.state.errors import DataplaneError

__all__ = ["attach", "fill", "forget_namespace", "load", "unpin"]

# BCC runs LLVM in-process, which is not safe to run twice at once: a lab
# applies its nodes from several threads of one process.
_COMPILING = threading.Lock()


def _bpffs_mounted(bpffs: str) -> bool:
    with open("/proc/mounts", encoding="utf-8") as f:
        return any(line.split()[1:3] == [bpffs, "bpf"] for line in f)


def _remove_tree(directory: Path) -> None:
    """A pinned directory and everything pinned under it (unlinking a pin frees nothing
    that is still attached or open)."""
    for f in sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if f.is_dir():
            f.rmdir()
        else:
            f.unlink()
    directory.rmdir()
    _remove_empty_parents(directory.parent)


def _remove_empty_parents(parent: Path) -> None:
    while parent != Path(BPFFS) and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def forget_namespace(ns: str, bpffs: str = BPFFS) -> None:
    """Unpin what any node pinned for namespace `ns`, deleted without an apply (a lab's
    teardown): its programs went with its interfaces, its maps would stay."""
    for node_dir in sorted(Path(bpffs, "hercules").glob("*")):
        if (node_dir / ns).is_dir():
            _remove_tree(node_dir / ns)


def _sweep(node_root: Path) -> None:
    """Unpin the node's objects of namespaces that exist no more."""
    for ns_dir in sorted(node_root.glob("*")):
        if ns_dir.is_dir() and not Path("/run/netns", ns_dir.name).exists():
            _remove_tree(ns_dir)


def load(hook: str, header: str, directory: Path, run: Callable[[Sequence[str]], str]) -> None:
    """Compile the `hook` program with `header` and pin it into `directory` (PLATFORM.md: no
    bpffs is mounted by default; one is mounted at BPFFS when missing). The node's objects
    of namespaces deleted without an apply are unpinned first."""
    if directory.is_relative_to(BPFFS) and not _bpffs_mounted(BPFFS):
        run(["mount", "-t", "bpf", "bpf", BPFFS])
    _sweep(directory.parent.parent)
    with _COMPILING:
        loaded = compile_program(PROGRAMS[hook], header)
    try:
        bpf_pins.pin_loaded(loaded, directory)
    except (OSError, DataplaneError) as exc:
        for f in directory.glob("*"):
            f.unlink()
        if directory.is_dir():
            directory.rmdir()
        raise DataplaneError(f"pinning into {directory}: {exc}") from None
    finally:
        loaded.close()  # the pins keep the programs and maps


def _interfaces(ns: str) -> dict[str, tuple[int, int]]:
    """name -> (ifindex, layer) of the interfaces in `ns`."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    out = {}
    with IPRoute(netns=ns, flags=0) as ipr:
        for link in ipr.get_links():
            layer = 2 if link.get_attr("IFLA_ADDRESS") else 3  # TUN has no L2 address
            out[str(link.get_attr("IFLA_IFNAME"))] = (int(link["index"]), layer)
    return out


def fill(ns: str, routes: Sequence[Mapping[str, Any]], directory: Path) -> None:
    bpf_pins.fill_routes(directory, routes, _interfaces(ns))


def attach(ns: str, ifname: str, hook: str, program: Path, *, native: bool = False) -> None:
    if hook == "xdp":
        bpf_pins.attach_xdp(ns, ifname, program, native=native)
    else:
        bpf_pins.attach_tc(ns, ifname, program)


def unpin(directory: Path) -> Callable[[], None]:
    """Unpin an object (bpf_pins.unpin), and the node's directories it leaves empty."""
    repin = bpf_pins.unpin(directory)
    _remove_empty_parents(directory.parent)
    return repin
