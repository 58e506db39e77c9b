"""Backends: pure functions from the IR to files (relative path -> text)."""

from __future__ import annotations

from collections.abc import Callable

from hercc import ir
from hercc.backends import node_json

Backend = Callable[[ir.IR], dict[str, str]]

BACKENDS: tuple[Backend, ...] = (node_json.render,)


def render_all(model: ir.IR) -> dict[str, str]:
    files = {"ir.json": ir.to_json(model)}
    for backend in BACKENDS:
        files.update(backend(model))
    return files
