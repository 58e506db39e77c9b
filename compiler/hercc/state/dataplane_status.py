"""What a node's dataplane runs, for `hercc dataplane status`: its pinned objects, where their
programs are attached, their maps and their counters.

Read from the node's pins on the bpffs (dataplane/attach.py: one object per
namespace and hook, `<NS>/<hook>-<digest>`) through libbpf
(state/bpf_pins.py, state/flow_maps.py), and the attachments of each
namespace through `ip` and `tc` (state/bpf.py `Bpf`): an attachment is the
object's when its program id is one of the object's programs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from hercc.dataplane.attach import BPFFS, hook_id, node_root
from hercc.state.bpf import Bpf, BpfCli, attachments_of
from hercc.state.bpf_pins import pinned_objects
from hercc.state.flow_maps import map_usage, read_counters

__all__ = ["MapStatus", "ObjectStatus", "ProgramStatus", "node_status"]


@dataclass(frozen=True)
class ProgramStatus:
    entry: str
    prog_id: int
    devices: tuple[str, ...]  # the interfaces it is attached to, at the object's hook


@dataclass(frozen=True)
class MapStatus:
    name: str
    max_entries: int
    in_use: int


@dataclass(frozen=True)
class ObjectStatus:
    """One pinned object: its namespace, hook and digest, programs, maps and counters."""

    ns: str
    hook: str  # the resource id's: tc-ingress or xdp
    digest: str
    programs: tuple[ProgramStatus, ...]
    maps: tuple[MapStatus, ...]
    counters: dict[str, int]


def node_status(
    node: str, namespaces: Collection[str], bpf: Bpf | None = None, bpffs: str = BPFFS
) -> list[ObjectStatus]:
    """Every object `node` pinned in `namespaces` (those it owns), sorted by namespace and
    directory."""
    root = Path(node_root(node, bpffs))
    if not root.is_dir():
        return []
    bpf = bpf or BpfCli(bpffs)
    out: list[ObjectStatus] = []
    for ns_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in namespaces):
        objects = pinned_objects(ns_dir)
        if not objects:
            continue
        here = Path("/run/netns", ns_dir.name).exists()  # gone: nothing is attached there
        attached = attachments_of(bpf, ns_dir.name) if here else []
        on: dict[tuple[int, str], list[str]] = {}  # (program id, hook) -> devices
        for a in attached:
            on.setdefault((a.prog_id, a.hook), []).append(a.ifname)
        for obj in objects:
            hook = hook_id(obj.hook)
            programs = tuple(
                ProgramStatus(entry, prog_id, tuple(sorted(on.get((prog_id, hook), []))))
                for entry, prog_id in sorted(obj.programs.items())
            )
            usage = map_usage(ns_dir / obj.name)
            maps = tuple(MapStatus(info.name, info.max_entries, used) for info, used in usage)
            flows = next((m.in_use for m in maps if m.name == "flows"), 0)
            counters = read_counters(ns_dir / obj.name, flows)
            out.append(ObjectStatus(ns_dir.name, hook, obj.digest, programs, maps, counters))
    return out
