"""nodes/<node>/dataplane/: what the node's eBPF programs are built and filled with.

* hercules_config.h: the generated header the programs under dataplane/
  include (hercc.dataplane.config): fast-path kind, accounting, map sizes.
* maps.json: per network namespace, the interfaces to attach to (and with
  which hook and entry point), the routes of the LPM tries, and every overlay
  address's node (hercc.dataplane.maps).

Written when the spec asks for a dataplane: `dataplane { fastpath xdp | tc }`,
or `monitor { netflow ... }` (accounting-only programs with `fastpath off`).
No kernel and no BCC are needed: BCC compiles the programs at apply time.
"""

from __future__ import annotations

from hercc import ir
from hercc.backends.memo import RenderMemo
from hercc.dataplane.config import header_text, node_config, wanted
from hercc.dataplane.maps import node_maps
from hercc.dataplane.program import HEADER_NAME

__all__ = ["render_node"]


def render_node(model: ir.IR, node: ir.Node, memo: RenderMemo) -> dict[str, str]:
    if not wanted(model):
        return {}
    maps = node_maps(model, node)
    base = f"nodes/{node.name}/dataplane"
    return {
        f"{base}/{HEADER_NAME}": header_text(node_config(model, maps)),
        f"{base}/maps.json": ir.dumps(maps),
    }
