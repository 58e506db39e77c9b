"""Backends: pure functions from the IR to files (relative path -> text)."""

from __future__ import annotations

from collections.abc import Callable

from hercc import ir
from hercc.backends import netplan, networkd, node_json, wg_quick, wireguard

Backend = Callable[[ir.IR], dict[str, str]]

BACKENDS: tuple[Backend, ...] = (
    node_json.render,
    wireguard.render,
    wg_quick.render,
    networkd.render,
    netplan.render,
)


def render_all(model: ir.IR) -> dict[str, str]:
    files = {"ir.json": ir.to_json(model)}
    for backend in BACKENDS:
        files.update(backend(model))
    return files
