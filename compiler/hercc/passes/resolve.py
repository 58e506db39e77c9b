"""Pass 1: names. Duplicates and undefined references, reported where written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hercc import ast, codes
from hercc.diagnostics import Collector, did_you_mean
from hercc.source import Span


@dataclass(frozen=True)
class Names:
    networks: dict[str, ast.NetworkDecl]
    nodes: dict[str, ast.NodeDecl]
    workloads: dict[str, ast.WorkloadDecl]
    gateways: dict[str, ast.GatewayDecl]


def _unique(
    items: Iterable[tuple[str, Span]],
    what: str,
    diags: Collector,
    seen: dict[str, tuple[str, Span]] | None = None,
) -> None:
    table = {} if seen is None else seen
    for name, span in items:
        if name in table:
            other_what, first = table[name]
            diags.error(
                codes.DUPLICATE,
                f'{what} "{name}" is already defined'
                if other_what == what
                else f'{what} "{name}": the name is already used by {other_what} "{name}"',
                span,
                f"first defined at {first}",
            )
        else:
            table[name] = (what, span)


def _ref(name: str, table: dict[str, object], what: str, span: Span, diags: Collector) -> None:
    if name not in table:
        diags.error(codes.UNDEFINED, f'undefined {what} "{name}"', span, did_you_mean(name, table))


def resolve(spec: ast.Spec, diags: Collector) -> Names:
    _unique(((n.name, n.span) for n in spec.networks), "network", diags)
    # Nodes and workloads each get a namespace in the lab: one name space for both.
    hosts: dict[str, tuple[str, Span]] = {}
    _unique(((n.name, n.span) for n in spec.nodes), "node", diags, hosts)
    _unique(((w.name, w.span) for w in spec.workloads), "workload", diags, hosts)
    _unique(((g.name, g.span) for g in spec.gateways), "gateway", diags)
    _unique(((s.name, s.span) for s in spec.services), "service", diags)
    _unique(((d.zone, d.span) for d in spec.dns), "dns zone", diags)
    _unique(((e.name, e.span) for e in spec.enterprises), "enterprise", diags)
    for e in spec.enterprises:
        for kind, items in (
            ("vxlan", e.vxlans),
            ("ipsec", e.ipsecs),
            ("vlan", e.vlans),
            ("bridge", e.bridges),
        ):
            _unique(((i.name, i.span) for i in items), f"{kind} link", diags)

    names = Names(
        networks={n.name: n for n in spec.networks},
        nodes={n.name: n for n in spec.nodes},
        workloads={w.name: w for w in spec.workloads},
        gateways={g.name: g for g in spec.gateways},
    )
    nets: dict[str, object] = dict(names.networks)
    nodes: dict[str, object] = dict(names.nodes)
    for node in spec.nodes:
        for net in node.networks:
            _ref(net, nets, "network", node.spans[f"network:{net}"], diags)
    for link in spec.links:
        _ref(link.a, nodes, "node", link.spans["a"], diags)
        _ref(link.b, nodes, "node", link.spans["b"], diags)
    for w in spec.workloads:
        _ref(w.node, nodes, "node", w.spans["node"], diags)
        if w.network is not None:
            _ref(w.network, nets, "network", w.spans["network"], diags)
    gws: dict[str, object] = dict(names.gateways)
    workloads: dict[str, object] = dict(names.workloads)
    for s in spec.services:
        for replica in s.workloads:
            _ref(replica, workloads, "workload", s.spans[f"workload:{replica}"], diags)
        for ex in s.exposes:
            for gw in ex.via:
                _ref(gw, gws, "gateway", ex.spans[f"via:{gw}"], diags)
    for e in spec.enterprises:
        links: tuple[ast.VxlanDecl | ast.IpsecDecl | ast.VlanDecl | ast.BridgeDecl, ...]
        links = (*e.vxlans, *e.ipsecs, *e.vlans, *e.bridges)
        for item in links:
            _ref(item.node, nodes, "node", item.spans["node"], diags)
    return names
