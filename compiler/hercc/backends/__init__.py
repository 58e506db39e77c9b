"""Backends: pure functions from the IR to files (relative path -> text), one node at a time.

A backend renders one node's files; it also gets the render's RenderMemo, where
backends that print the same peers for many nodes keep their text.
render_files makes one memo per call and yields the files node by node, so a
build holds one node's files at a time, never the whole output.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

from hercc import ir
from hercc.backends import netplan, networkd, node_json, wg_quick, wireguard
from hercc.backends.memo import RenderMemo

Backend = Callable[[ir.IR, ir.Node, RenderMemo], dict[str, str]]

BACKENDS: dict[str, Backend] = {
    "node-json": node_json.render_node,
    "wireguard": wireguard.render_node,
    "wg-quick": wg_quick.render_node,
    "networkd": networkd.render_node,
    "netplan": netplan.render_node,
}


def render_files(
    model: ir.IR,
    only: Collection[str] | None = None,
    nodes: Collection[str] | None = None,
    ir_json: str | None = None,
) -> Iterator[tuple[str, str]]:
    """ir.json, then each node's files (every node's, or only those named), by node name.

    Only the named backends render, when `only` is given. Files are rendered as
    they are consumed: one node's at a time. `ir_json` is ir.to_json(model)
    when the caller has it already (a build validates the data first).
    """
    memo = RenderMemo()
    backends = [b for name, b in BACKENDS.items() if only is None or name in only]
    yield "ir.json", ir.to_json(model) if ir_json is None else ir_json
    for node in sorted(model.nodes, key=lambda n: n.name):
        if nodes is None or node.name in nodes:
            for backend in backends:
                yield from backend(model, node, memo).items()


def render_all(
    model: ir.IR, only: Collection[str] | None = None, nodes: Collection[str] | None = None
) -> dict[str, str]:
    """render_files, all in memory."""
    return dict(render_files(model, only, nodes))
