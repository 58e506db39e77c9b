"""Generic syntax tree -> typed AST.

Option tables (NETWORK, NODE, ...) say which options each block takes; one
reader (`fields.read_block`) applies them, so every block reports unknown,
repeated and missing options the same way, for .herc and YAML alike. Each
statement family keeps its tables next to its builder: mesh (network, node,
workload, link), ingress (gateway, service, dns), enterprise, and monitoring
(dataplane, monitor).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hercc import ast, codes
from hercc.diagnostics import Collector, did_you_mean
from hercc.source import Span
from hercc.syntax import Stmt

from . import enterprise, ingress, mesh, monitoring
from .fields import read_head

TOP_LEVEL = ("include", "network", "node", "link", "workload", "gateway", "service", "dns",
             "enterprise", "dataplane", "monitor")  # fmt: skip


def build(stmts: Sequence[Stmt], diags: Collector) -> ast.Spec:
    """Every top-level statement of every file, in order; `include`s are already expanded."""
    networks: list[ast.NetworkDecl] = []
    nodes: list[ast.NodeDecl] = []
    links: list[ast.LinkDecl] = []
    workloads: list[ast.WorkloadDecl] = []
    gateways: list[ast.GatewayDecl] = []
    services: list[ast.ServiceDecl] = []
    dnss: list[ast.DnsDecl] = []
    ents: list[ast.EnterpriseDecl] = []
    builders: dict[str, tuple[Callable[[Stmt, Collector], Any], list[Any]]] = {
        "network": (mesh.network, networks),
        "node": (mesh.node, nodes),
        "link": (mesh.link, links),
        "workload": (mesh.workload, workloads),
        "gateway": (ingress.gateway, gateways),
        "service": (ingress.service, services),
        "dns": (ingress.dns, dnss),
        "enterprise": (enterprise.enterprise, ents),
    }
    fastpath, fastpath_span, netflow = "off", None, None
    singletons: dict[str, Span] = {}
    for stmt in stmts:
        if stmt.keyword in builders:
            fn, bucket = builders[stmt.keyword]
            result = fn(stmt, diags)
            if result is not None:
                bucket.append(result)
        elif stmt.keyword in ("dataplane", "monitor"):
            if stmt.keyword in singletons:
                diags.error(
                    codes.REPEATED,
                    f'"{stmt.keyword}" given twice',
                    stmt.span,
                    f"first given at {singletons[stmt.keyword]}",
                )
                continue
            singletons[stmt.keyword] = stmt.span
            if read_head(stmt, 0, diags) is None:
                continue
            if stmt.keyword == "dataplane":
                fastpath, fastpath_span = monitoring.dataplane(stmt, diags)
            else:
                netflow = monitoring.monitor(stmt, diags)
        elif stmt.keyword == "include":
            continue  # expanded by the loader
        else:
            diags.error(
                codes.UNKNOWN,
                f'unknown statement "{stmt.keyword}"',
                stmt.span,
                did_you_mean(stmt.keyword, TOP_LEVEL) or f"statements: {', '.join(TOP_LEVEL)}",
            )
    return ast.Spec(
        networks=tuple(networks),
        nodes=tuple(nodes),
        links=tuple(links),
        workloads=tuple(workloads),
        gateways=tuple(gateways),
        services=tuple(services),
        dns=tuple(dnss),
        enterprises=tuple(ents),
        fastpath=fastpath,
        fastpath_span=fastpath_span,
        netflow=netflow,
    )
