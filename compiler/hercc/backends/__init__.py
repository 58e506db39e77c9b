"""Backends: pure functions from the IR to files (relative path -> text).

A backend also gets the render's RenderMemo, where backends that print the
same peers many times keep their text; render_all makes one per call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from hercc import ir
from hercc.backends import (
    dns_zone,
    gateway_json,
    gateway_tunnels,
    gateway_units,
    haproxy,
    netplan,
    networkd,
    nftables,
    node_json,
    wg_quick,
    wireguard,
)
from hercc.backends.memo import RenderMemo

Backend = Callable[[ir.IR, RenderMemo], dict[str, str]]

BACKENDS: dict[str, Backend] = {
    "node-json": node_json.render,
    "wireguard": wireguard.render,
    "wg-quick": wg_quick.render,
    "networkd": lambda model, _memo: networkd.render(model),
    "netplan": netplan.render,
    "gateway-tunnels": gateway_tunnels.render,
    "gateway-units": gateway_units.render,
    "gateway-json": gateway_json.render,
    "haproxy": haproxy.render,
    "nftables": nftables.render,
    "dns": dns_zone.render,
}


def render_all(model: ir.IR, only: Collection[str] | None = None) -> dict[str, str]:
    """ir.json plus every backend's files (or only the named backends')."""
    memo = RenderMemo()
    files = {"ir.json": ir.to_json(model)}
    for name, backend in BACKENDS.items():
        if only is None or name in only:
            files.update(backend(model, memo))
    return files
