"""Backends: pure functions from the IR to files (relative path -> text).

Two kinds. A node backend (BACKENDS) renders one node's files, nodes/<node>/...;
a global backend (GLOBAL_BACKENDS) renders the files that belong to no node:
gateways/<gateway>/... and dns/<zone>.zone. Both get the render's RenderMemo,
where backends that print the same peers for many nodes keep their text.
render_files makes one memo per call and yields the files node by node, then
the global ones, then ir.json, so a build holds one node's files at a time, never the whole
output. A `--backend` name may have both kinds (a tunnel has two ends).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

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


def render_files(
    model: ir.IR,
    only: Collection[str] | None = None,
    nodes: Collection[str] | None = None,
    ir_json: Callable[[], str] | None = None,
) -> Iterator[tuple[str, str]]:
    """Each node's files (every node's, or only those named), by node name, then
    the global files (gateways and zones): only when every node is rendered, as
    they belong to none of them; then ir.json.

    Only the named backends render, when `only` is given. Files are rendered as
    they are consumed: one node's at a time. `ir_json` gives ir.to_json(model)
    when the caller makes it: a build checks it against the schema on another
    thread while the nodes' files are written, and asks for it last.
    """
    memo = RenderMemo()
    backends = [b for name, b in BACKENDS.items() if only is None or name in only]
    for node in sorted(model.nodes, key=lambda n: n.name):
        if nodes is None or node.name in nodes:
            for backend in backends:
                yield from backend(model, node, memo).items()
    if nodes is None:
        for name, global_backend in GLOBAL_BACKENDS.items():
            if only is None or name in only:
                yield from global_backend(model, memo).items()
    yield "ir.json", ir.to_json(model) if ir_json is None else ir_json()


def render_all(
    model: ir.IR, only: Collection[str] | None = None, nodes: Collection[str] | None = None
) -> dict[str, str]:
    """render_files, all in memory."""
    return dict(render_files(model, only, nodes))
