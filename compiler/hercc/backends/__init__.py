"""Backends: pure functions from the IR to files (relative path -> text).

Two kinds. A node backend (BACKENDS) renders one node's files, nodes/<node>/...;
a global backend (GLOBAL_BACKENDS) renders the files that belong to no node:
gateways/<gateway>/... and dns/<zone>.zone. Both get the render's RenderMemo,
where backends that print the same peers for many nodes keep their text.

The output comes in parts, rendered as they are consumed, so a build holds
one node's files at a time, never the whole output: node_parts (the nodes by
name, PART_NODES at a time: a build writes them in parallel), then
global_files (the global ones, then ir.json). render_files gives them all in
that order. A `--backend` name may have both kinds (a tunnel has two ends).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from functools import partial

from hercc import ir
from hercc.backends import (
    dataplane,
    dns_zone,
    enterprise_netplan,
    enterprise_networkd,
    gateway_json,
    gateway_tunnels,
    gateway_units,
    haproxy,
    netplan,
    networkd,
    nftables,
    node_json,
    swanctl,
    wg_quick,
    wireguard,
)
from hercc.backends.memo import RenderMemo

Backend = Callable[[ir.IR, ir.Node, RenderMemo], dict[str, str]]
GlobalBackend = Callable[[ir.IR, RenderMemo], dict[str, str]]

BACKENDS: dict[str, Backend] = {
    "node-json": node_json.render_node,
    "wireguard": wireguard.render_node,
    "wg-quick": wg_quick.render_node,
    "networkd": networkd.render_node,
    "netplan": netplan.render_node,
    "gateway-tunnels": gateway_tunnels.render_node,
    "gateway-units": gateway_units.render_node,
    "nftables": nftables.render_node,
    "dataplane": dataplane.render_node,
    "enterprise-networkd": enterprise_networkd.render_node,
    "enterprise-netplan": enterprise_netplan.render_node,
    "ipsec": swanctl.render_node,
}

GLOBAL_BACKENDS: dict[str, GlobalBackend] = {
    "gateway-tunnels": gateway_tunnels.render_gateways,
    "gateway-units": gateway_units.render_gateways,
    "gateway-json": gateway_json.render_gateways,
    "haproxy": haproxy.render_gateways,
    "dns": dns_zone.render_zones,
}

# What --backend accepts, in the order render_files runs them.
BACKEND_NAMES = list(dict.fromkeys([*BACKENDS, *GLOBAL_BACKENDS]))


# The nodes of one part of a build. A big build's parts are rendered and
# written by one process per CPU: small enough to share the work out evenly.
PART_NODES = 128

FilePart = Callable[[], Iterator[tuple[str, str]]]


def node_parts(
    model: ir.IR,
    only: Collection[str] | None = None,
    nodes: Collection[str] | None = None,
    size: int | None = None,
) -> list[FilePart]:
    """Each node's files (every node's, or only those named), by node name, in
    parts of `size` nodes (PART_NODES by default). A part renders its files as
    they are consumed, one node's at a time.

    The parts share one RenderMemo: run in one process, each reuses the text
    the parts before it rendered; a forked worker extends its own copy (the
    memo's keys are the identities of IR objects, which fork keeps).
    Only the named backends render, when `only` is given.
    """
    backends = [b for name, b in BACKENDS.items() if only is None or name in only]
    by_name = sorted(model.nodes, key=lambda n: n.name)
    chosen = [n for n in by_name if nodes is None or n.name in nodes]
    memo = RenderMemo()

    def part(batch: list[ir.Node]) -> Iterator[tuple[str, str]]:
        for node in batch:
            for backend in backends:
                yield from backend(model, node, memo).items()

    step = PART_NODES if size is None else size
    return [partial(part, chosen[i : i + step]) for i in range(0, len(chosen), step)]


def global_files(
    model: ir.IR,
    only: Collection[str] | None = None,
    nodes: Collection[str] | None = None,
    ir_json: Callable[[], str] | None = None,
) -> Iterator[tuple[str, str]]:
    """The global files (gateways and zones), only when every node is rendered, as
    they belong to none of them; then ir.json (`ir_json()` when given: a build
    checks it against the schema first)."""
    if nodes is None:
        memo = RenderMemo()
        for name, global_backend in GLOBAL_BACKENDS.items():
            if only is None or name in only:
                yield from global_backend(model, memo).items()
    yield "ir.json", ir.to_json(model) if ir_json is None else ir_json()


def render_files(
    model: ir.IR,
    only: Collection[str] | None = None,
    nodes: Collection[str] | None = None,
    ir_json: Callable[[], str] | None = None,
) -> Iterator[tuple[str, str]]:
    """node_parts' files, then global_files': the whole output, in order."""
    for part in node_parts(model, only, nodes):
        yield from part()
    yield from global_files(model, only, nodes, ir_json)


def render_all(
    model: ir.IR, only: Collection[str] | None = None, nodes: Collection[str] | None = None
) -> dict[str, str]:
    """render_files, all in memory."""
    return dict(render_files(model, only, nodes))
