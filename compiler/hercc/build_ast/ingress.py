"""Ingress: gateway, service (with its expose and health options) and dns statements."""

from __future__ import annotations

from hercc import ast, codes, values
from hercc.diagnostics import Collector
from hercc.syntax import Stmt

from .fields import Option, label, read_block, read_head


def _expose(stmt: Stmt, diags: Collector) -> ast.Expose | None:
    """expose https "host" via gw, gw | expose http "host" via gw | expose tcp PORT via gw."""
    args = stmt.args
    if len(args) != 4 or args[2].text != "via" or args[2].kind not in ("atom", "scalar"):
        diags.error(
            codes.ARGUMENTS,
            'expose takes: http|https "host" via GATEWAY[, ...]  or  tcp PORT via GATEWAY[, ...]',
            args[0].span if args else stmt.span,
        )
        return None
    proto = values.choice("http", "https", "tcp")(args[0], diags)
    host = port = None
    if proto == "tcp":
        port = values.port(args[1], diags)
    elif proto is not None:
        host = values.hostname(args[1], diags)
    via_items = args[3].items if args[3].kind == "list" else (args[3],)
    via = [values.name(v, diags) for v in via_items]
    if proto is None or (host is None and port is None) or None in via:
        return None
    spans = {"target": args[1].span} | {f"via:{v.text}": v.span for v in via_items}
    return ast.Expose(proto, host, port, tuple(v for v in via if v), stmt.span, spans)


def _health(stmt: Stmt, diags: Collector) -> ast.Health | None:
    """health http "/path" every 5s | health tcp every 5s."""
    args = stmt.args
    usage = 'health takes: http "/path" every DURATION  or  tcp every DURATION'
    if not args:
        diags.error(codes.ARGUMENTS, usage, stmt.span)
        return None
    proto = values.choice("http", "tcp")(args[0], diags)
    if proto is None:
        return None
    want = 4 if proto == "http" else 3
    if len(args) != want or args[want - 2].text != "every":
        diags.error(codes.ARGUMENTS, usage, args[0].span)
        return None
    path = values.string(args[1], diags) if proto == "http" else None
    if path is not None and not path.startswith("/"):
        diags.error(codes.BAD_VALUE, f'health path "{path}" must start with "/"', args[1].span)
        return None
    interval = values.health_interval(args[-1], diags)
    if interval is None or (proto == "http" and path is None):
        return None
    return ast.Health(proto, path, interval, stmt.span)


GATEWAY = {
    "address": Option("one", values.address4, required=True),
    "address6": Option("one", values.address6),
    "farmer": Option("one", values.string),
    "listen": Option("list", values.port),
    "tunnel": Option("one", values.port),
}
SERVICE = {
    "workload": Option("list", values.name, required=True),
    "port": Option("one", values.port, required=True),
    "expose": Option("custom", _expose, repeat=True),
    "health": Option("custom", _health),
}
DNS = {
    "ttl": Option("one", values.integer(0, 2_147_483_647, "TTL")),  # RFC 2181, section 8
    "nameserver": Option("list", values.hostname),
}


def gateway(stmt: Stmt, diags: Collector) -> ast.GatewayDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, GATEWAY, f"gateway {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    spans = dict(f.spans) | {f"listen:{p}": s for p, s in f.items("listen")}
    return ast.GatewayDecl(
        head[0],
        stmt.args[0].span,
        f.values["address"],
        f.get("address6"),
        f.get("farmer"),
        f.get("listen", (80, 443)),
        f.get("tunnel", 7443),
        spans,
    )


def service(stmt: Stmt, diags: Collector) -> ast.ServiceDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, SERVICE, f"service {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    exposes = tuple(e for e, _ in f.items("expose"))
    spans = dict(f.spans) | {f"workload:{w}": s for w, s in f.items("workload")}
    return ast.ServiceDecl(
        head[0],
        stmt.args[0].span,
        f.values["workload"],
        f.values["port"],
        exposes,
        f.get("health"),
        spans,
    )


def dns(stmt: Stmt, diags: Collector) -> ast.DnsDecl | None:
    head = read_head(stmt, 1, diags, values.hostname)
    f = read_block(stmt, DNS, f"dns {label(stmt)}", diags)
    if head is None:
        return None
    return ast.DnsDecl(
        head[0],
        stmt.args[0].span,
        f.get("ttl", ast.DEFAULT_DNS_TTL),
        f.get("nameserver", ()),
        f.spans,
    )
