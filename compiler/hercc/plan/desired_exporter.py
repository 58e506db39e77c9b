"""The desired flow exporter of a node (called by plan/desired.py).

With `monitor { netflow ... }` in the spec and programs on the node (its
`bpf` resources, plan/desired_dataplane.py: a node with no interface to
account on has none, and then no exporter):

  exporter  "<node>": protocol, collectors, active_timeout_ms,
            idle_timeout_ms, sampling (flows.exporter.ExportConfig.attrs)

It reads the maps of every program of the node, so it has no one parent: it
comes after them in the apply order (resources/model.py KINDS), and goes
before them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hercc import ir
from hercc.flows.exporter import ExportConfig
from hercc.resources.ids import ExporterId, format_id
from hercc.resources.model import FORCES_NEW, Resource

__all__ = ["exporter_resources"]


def exporter_resources(
    model: ir.IR, node: ir.Node, programs: Iterable[Resource]
) -> Iterator[Resource]:
    """The `exporter` of `node` (the module docstring); `programs`: its desired resources."""
    if model.netflow is None or not any(r.kind == "bpf" for r in programs):
        return
    config = ExportConfig.from_ir(model.netflow, node=node.name)
    yield Resource(
        "exporter",
        format_id(ExporterId(node.name)),
        config.attrs(),
        forces_new=FORCES_NEW["exporter"],
    )
