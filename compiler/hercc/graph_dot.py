"""`hercc graph`: the network drawn with Graphviz.

Public nodes are boxes (bold when they relay), nat nodes dashed ellipses;
an edge is a WireGuard peering on a chosen path, labelled with its cost;
gateways are diamonds, joined to the nodes of the workloads they publish.
"""

from __future__ import annotations

import shutil

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.passes.routing import Graph
from hercc.sysio.process import run


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(model: ir.IR) -> str:
    out = [
        "graph hercules {",
        "  graph [rankdir=LR, fontname=Helvetica];",
        "  node [fontname=Helvetica];",
        "  edge [fontname=Helvetica, fontsize=10];",
    ]
    for node in model.nodes:
        if node.kind == "nat":
            style = "shape=ellipse, style=dashed"
        else:
            style = "shape=box, style=" + ("bold" if node.relay else "solid")
        addrs = "\\n".join(f"{m.network} {m.subnet or m.subnet6}" for m in node.networks)
        out.append(
            f"  {_q('node:' + node.name)} [label={_q(node.name)}, {style}, tooltip={_q(addrs)}];"
        )
    for net in model.networks:
        graph = Graph(model, net.name)
        seen: set[tuple[str, str]] = set()
        for node in model.nodes:
            for m in node.networks:
                if m.network != net.name:
                    continue
                for peer in m.peers:
                    key = (min(node.name, peer.node), max(node.name, peer.node))
                    if key in seen:
                        continue
                    seen.add(key)
                    cost = graph.cost(*key)
                    out.append(
                        f"  {_q('node:' + key[0])} -- {_q('node:' + key[1])} "
                        f"[label={_q(f'{net.name} {cost}')}];"
                    )
    workloads = {w.name: w for w in model.workloads}
    for gw in model.gateways:
        out.append(f"  {_q('gateway:' + gw.name)} [label={_q(gw.name)}, shape=diamond];")
    for svc in model.services:
        hosts = sorted({workloads[w].node for w in svc.workloads})
        for ex in svc.exposes:
            target = ex.host if ex.host is not None else str(ex.port)
            for via in ex.via:
                out += [
                    f"  {_q('gateway:' + via)} -- {_q('node:' + host)} "
                    f"[style=dotted, label={_q(f'{ex.protocol} {target} -> {svc.name}')}];"
                    for host in hosts
                ]
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(dot_text: str) -> str:
    if shutil.which("dot") is None:
        raise OperationError("graphviz `dot` is not installed (Debian: apt-get install graphviz)")
    return run(["dot", "-Tsvg"], input=dot_text, timeout=60, error=OperationError).stdout
