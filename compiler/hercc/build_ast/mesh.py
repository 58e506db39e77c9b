"""The mesh: network, node, workload and link statements."""

from __future__ import annotations

from hercc import ast, codes, values
from hercc.diagnostics import Collector
from hercc.syntax import Stmt

from .fields import Option, label, read_block, read_head

NETWORK = {
    "range": Option("one", values.cidr4),
    "range6": Option("one", values.cidr6),
    "subnets": Option("one", values.prefix_length),
    "port": Option("one", values.port),
    # 1280: the least IPv6 allows on a link; 65535: the most Linux sets on a TUN (wireguard-go)
    "mtu": Option("one", values.integer(1280, 65535, "MTU")),
    "keepalive": Option("one", values.keepalive),
    "psk": Option("one", values.on_off),
}
NODE = {
    "network": Option("list", values.name, required=True),
    "endpoint": Option("one", values.endpoint),
    "nat": Option("flag"),
    "subnet": Option("repeat", values.cidr),
    "relay": Option("one", values.on_off),
    "pubkey": Option("one", values.wg_key),
}
LINK = {
    "cost": Option("one", values.integer(1, 1_000_000, "cost")),
    "unreachable": Option("flag"),
}
WORKLOAD = {
    "node": Option("one", values.name, required=True),
    "network": Option("one", values.name),
    "address": Option("one", values.address4),
    "address6": Option("one", values.address6),
}


def network(stmt: Stmt, diags: Collector) -> ast.NetworkDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(
        stmt, NETWORK, f"network {stmt.args[0].text if stmt.args else ''}".strip(), diags
    )
    if head is None:
        return None
    if "range" not in f.spans and "range6" not in f.spans:
        diags.error(codes.MISSING, f'network {head[0]} needs "range" or "range6"', stmt.span)
        return None
    return ast.NetworkDecl(
        name=head[0],
        span=stmt.args[0].span,
        range4=f.get("range"),
        range6=f.get("range6"),
        subnet_prefix=f.get("subnets", ast.DEFAULT_SUBNET_PREFIX),
        port=f.get("port", ast.DEFAULT_WG_PORT),
        mtu=f.get("mtu", ast.DEFAULT_MTU),
        keepalive_ms=f.get("keepalive", ast.DEFAULT_KEEPALIVE_MS),
        psk=f.get("psk", False),
        spans=f.spans,
    )


def node(stmt: Stmt, diags: Collector) -> ast.NodeDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, NODE, f"node {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    spans = dict(f.spans)
    spans.update({f"network:{n}": s for n, s in f.items("network")})
    subnets = []
    for i, (net, span) in enumerate(f.items("subnet")):
        spans[f"subnet:{i}"] = span
        subnets.append(net)
    return ast.NodeDecl(
        name=head[0],
        span=stmt.args[0].span,
        networks=f.values["network"],
        endpoint=f.get("endpoint"),
        nat=f.get("nat", False),
        pinned_subnets=tuple(subnets),
        relay=f.get("relay", True),
        pubkey=f.get("pubkey"),
        spans=spans,
    )


def link(stmt: Stmt, diags: Collector) -> ast.LinkDecl | None:
    head = read_head(stmt, 2, diags)
    f = read_block(stmt, LINK, f"link {' '.join(a.text for a in stmt.args)}", diags)
    if head is None:
        return None
    if "cost" in f.spans and f.get("unreachable"):
        diags.error(
            codes.ARGUMENTS,
            "a link is either unreachable or has a cost, not both",
            f.spans["unreachable"],
        )
        return None
    cost = None if f.get("unreachable") else f.get("cost", ast.DEFAULT_LINK_COST)
    spans = dict(f.spans) | {"a": stmt.args[0].span, "b": stmt.args[1].span}
    return ast.LinkDecl(head[0], head[1], stmt.span, cost, spans)


def workload(stmt: Stmt, diags: Collector) -> ast.WorkloadDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, WORKLOAD, f"workload {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.WorkloadDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.get("network"),
        f.get("address"),
        f.get("address6"),
        f.spans,
    )
