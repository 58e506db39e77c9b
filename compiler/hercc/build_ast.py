"""Generic syntax tree -> typed AST.

Option tables (NETWORK, NODE, ...) say which options each block takes; one
reader (`_read_block`) applies them, so every block reports unknown, repeated
and missing options the same way, for .herc and YAML alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hercc import ast, codes, values
from hercc.diagnostics import Collector, did_you_mean
from hercc.source import Span
from hercc.syntax import Stmt, Value

Kind = Literal["one", "list", "flag", "repeat", "custom", "block"]


@dataclass(frozen=True)
class Option:
    kind: Kind
    parse: Callable[..., Any] | None = None
    required: bool = False
    repeat: bool = False  # for custom/block kinds


@dataclass
class Fields:
    """What _read_block found in one block."""

    owner: Stmt
    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    many: dict[str, list[tuple[Any, Span]]] = field(default_factory=dict)
    complete: bool = False  # every required option was given, with a valid value

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def items(self, key: str) -> list[tuple[Any, Span]]:
        return self.many.get(key, [])


def _read_block(stmt: Stmt, table: dict[str, Option], what: str, diags: Collector) -> Fields:
    found = Fields(stmt)
    what = " ".join(what.split())  # "vxlan" when the name itself is missing
    for child in stmt.block or ():
        opt = table.get(child.keyword)
        if opt is None:
            diags.error(
                codes.UNKNOWN,
                f'unknown option "{child.keyword}" in {what}',
                child.span,
                did_you_mean(child.keyword, table) or f"{what} takes: {', '.join(sorted(table))}",
            )
            continue
        repeatable = opt.kind in ("repeat", "list") or opt.repeat
        if child.keyword in found.spans and not repeatable:
            first = found.spans[child.keyword]
            diags.error(
                codes.REPEATED,
                f'"{child.keyword}" given twice in {what}',
                child.span,
                f"first given at line {first.line}",
            )
            continue
        if opt.kind != "block" and child.block is not None:
            diags.error(codes.ARGUMENTS, f'"{child.keyword}" takes no {{ block }}', child.span)
            continue
        found.spans.setdefault(child.keyword, child.span)
        _read_option(child, opt, found, diags)
    for key, opt in table.items():
        if opt.required and key not in found.spans:
            diags.error(codes.MISSING, f'{what} needs "{key}"', stmt.span)
    found.complete = all(k in found.values for k, opt in table.items() if opt.required)
    return found


def _read_option(child: Stmt, opt: Option, found: Fields, diags: Collector) -> None:
    key = child.keyword
    if opt.kind == "flag":
        if child.args:
            diags.error(codes.ARGUMENTS, f'"{key}" takes no value', child.args[0].span)
        found.values[key] = True
        return
    if opt.kind in ("custom", "block"):
        assert opt.parse is not None
        result = opt.parse(child, diags)
        if result is not None:
            found.many.setdefault(key, []).append((result, child.span))
            found.values[key] = result
        return
    assert opt.parse is not None
    if opt.kind == "list":
        items = _list_items(child, diags)
        parsed = [opt.parse(v, diags) for v in items]
        found.many.setdefault(key, []).extend(
            (p, v.span) for p, v in zip(parsed, items, strict=True) if p is not None
        )
        found.values[key] = tuple(p for p, _ in found.many[key])
        return
    if len(child.args) != 1 or child.args[0].kind == "list":
        _arity(child, "one value", diags)
        return
    value = opt.parse(child.args[0], diags)
    if value is None:
        return
    if opt.kind == "repeat":
        found.many.setdefault(key, []).append((value, child.args[0].span))
    else:
        found.values[key] = value
        found.spans[key] = child.args[0].span


def _list_items(stmt: Stmt, diags: Collector) -> Sequence[Value]:
    if len(stmt.args) != 1:
        _arity(stmt, "one value or a comma list", diags)
        return ()
    arg = stmt.args[0]
    return arg.items if arg.kind == "list" else (arg,)


def _arity(stmt: Stmt, expected: str, diags: Collector) -> None:
    where = stmt.args[0].span if stmt.args else stmt.span
    got = (
        "nothing" if not stmt.args else f"{len(stmt.args)} value{'s' if len(stmt.args) > 1 else ''}"
    )
    if len(stmt.args) == 1 and stmt.args[0].kind == "list":
        got = "a list"
    diags.error(codes.ARGUMENTS, f'"{stmt.keyword}" takes {expected}, found {got}', where)


def _head(
    stmt: Stmt, count: int, diags: Collector, parse: Callable[..., Any] = values.name
) -> list[Any] | None:
    """The words after a block keyword: `node NAME`, `link A B`."""
    if len(stmt.args) != count or any(a.kind == "list" for a in stmt.args):
        label = {0: "no name", 1: "a name", 2: "two node names"}[count]
        _arity(stmt, label, diags)
        return None
    if stmt.block is None and stmt.keyword not in ("link", "include"):
        diags.error(codes.ARGUMENTS, f'"{stmt.keyword}" needs a {{ block }}', stmt.span)
        return None
    parsed = [parse(a, diags) for a in stmt.args]
    return None if any(p is None for p in parsed) else parsed


# ---------------------------------------------------------------- options


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


def _auth(stmt: Stmt, diags: Collector) -> tuple[str, str] | None:
    """auth psk secret("name")."""
    if len(stmt.args) != 2:
        diags.error(codes.ARGUMENTS, 'auth takes: psk secret("name")', stmt.span)
        return None
    method = values.choice("psk")(stmt.args[0], diags)
    ref = values.secret_ref(stmt.args[1], diags)
    return (method, ref) if method and ref else None


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
GATEWAY = {
    "address": Option("one", values.address4, required=True),
    "address6": Option("one", values.address6),
    "farmer": Option("one", values.string),
    "listen": Option("list", values.port),
    "tunnel": Option("one", values.port),
}
SERVICE = {
    "workload": Option("one", values.name, required=True),
    "port": Option("one", values.port, required=True),
    "expose": Option("custom", _expose, repeat=True),
    "health": Option("custom", _health),
}
DNS = {
    "ttl": Option("one", values.integer(0, 2_147_483_647, "TTL")),  # RFC 2181, section 8
    "nameserver": Option("list", values.hostname),
}
VXLAN = {
    "node": Option("one", values.name, required=True),
    "vni": Option("one", values.vni, required=True),
    "local": Option("one", values.address, required=True),
    "remote": Option("one", values.address, required=True),
    "port": Option("one", values.port),
    "bridge": Option("one", values.ifname),
}
IPSEC = {
    "node": Option("one", values.name, required=True),
    "remote": Option("one", values.endpoint, required=True),
    "local_ts": Option("list", values.cidr, required=True),
    "remote_ts": Option("list", values.cidr, required=True),
    "auth": Option("custom", _auth, required=True),
    "proposals": Option("list", values.string),
}
VLAN = {
    "node": Option("one", values.name, required=True),
    "parent": Option("one", values.ifname, required=True),
    "id": Option("one", values.vlan_id, required=True),
    "address": Option("one", values.interface),
}
BRIDGE = {
    "node": Option("one", values.name, required=True),
    "ports": Option("list", values.ifname),
}
DATAPLANE = {"fastpath": Option("one", values.choice("xdp", "tc", "off"))}
NETFLOW = {
    "collector": Option("one", values.endpoint, required=True),
    "protocol": Option("one", values.choice("ipfix", "v9")),
    "active_timeout": Option("one", values.flow_timeout),
    "idle_timeout": Option("one", values.flow_timeout),
    "sampling": Option("one", values.integer(1, 1_000_000, "sampling rate")),
}


def _network(stmt: Stmt, diags: Collector) -> ast.NetworkDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(
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


def _node(stmt: Stmt, diags: Collector) -> ast.NodeDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, NODE, f"node {_label(stmt)}", diags)
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


def _link(stmt: Stmt, diags: Collector) -> ast.LinkDecl | None:
    head = _head(stmt, 2, diags)
    f = _read_block(stmt, LINK, f"link {' '.join(a.text for a in stmt.args)}", diags)
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


def _workload(stmt: Stmt, diags: Collector) -> ast.WorkloadDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, WORKLOAD, f"workload {_label(stmt)}", diags)
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


def _gateway(stmt: Stmt, diags: Collector) -> ast.GatewayDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, GATEWAY, f"gateway {_label(stmt)}", diags)
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


def _service(stmt: Stmt, diags: Collector) -> ast.ServiceDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, SERVICE, f"service {_label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    exposes = tuple(e for e, _ in f.items("expose"))
    return ast.ServiceDecl(
        head[0],
        stmt.args[0].span,
        f.values["workload"],
        f.values["port"],
        exposes,
        f.get("health"),
        f.spans,
    )


def _dns(stmt: Stmt, diags: Collector) -> ast.DnsDecl | None:
    head = _head(stmt, 1, diags, values.hostname)
    f = _read_block(stmt, DNS, f"dns {_label(stmt)}", diags)
    if head is None:
        return None
    return ast.DnsDecl(
        head[0],
        stmt.args[0].span,
        f.get("ttl", ast.DEFAULT_DNS_TTL),
        f.get("nameserver", ()),
        f.spans,
    )


def _vxlan(stmt: Stmt, diags: Collector) -> ast.VxlanDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, VXLAN, f"vxlan {_label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.VxlanDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.values["vni"],
        f.values["local"],
        f.values["remote"],
        f.get("port", ast.DEFAULT_VXLAN_PORT),
        f.get("bridge"),
        f.spans,
    )


def _ipsec(stmt: Stmt, diags: Collector) -> ast.IpsecDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, IPSEC, f"ipsec {_label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    method, secret = f.values["auth"]
    return ast.IpsecDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.values["remote"],
        f.values["local_ts"],
        f.values["remote_ts"],
        method,
        secret,
        f.get("proposals", ("aes256-sha256-modp2048",)),
        f.spans,
    )


def _vlan(stmt: Stmt, diags: Collector) -> ast.VlanDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, VLAN, f"vlan {_label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.VlanDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.values["parent"],
        f.values["id"],
        f.get("address"),
        f.spans,
    )


def _bridge(stmt: Stmt, diags: Collector) -> ast.BridgeDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, BRIDGE, f"bridge {_label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.BridgeDecl(head[0], stmt.args[0].span, f.values["node"], f.get("ports", ()), f.spans)


ENTERPRISE = {
    "vxlan": Option("block", _vxlan, repeat=True),
    "ipsec": Option("block", _ipsec, repeat=True),
    "vlan": Option("block", _vlan, repeat=True),
    "bridge": Option("block", _bridge, repeat=True),
}


def _enterprise(stmt: Stmt, diags: Collector) -> ast.EnterpriseDecl | None:
    head = _head(stmt, 1, diags)
    f = _read_block(stmt, ENTERPRISE, f"enterprise {_label(stmt)}", diags)
    if head is None:
        return None
    return ast.EnterpriseDecl(
        head[0],
        stmt.args[0].span,
        tuple(v for v, _ in f.items("vxlan")),
        tuple(v for v, _ in f.items("ipsec")),
        tuple(v for v, _ in f.items("vlan")),
        tuple(v for v, _ in f.items("bridge")),
    )


def _netflow(stmt: Stmt, diags: Collector) -> ast.NetflowDecl | None:
    if _head(stmt, 0, diags) is None:
        return None
    f = _read_block(stmt, NETFLOW, "netflow", diags)
    if not f.complete:
        return None
    return ast.NetflowDecl(
        stmt.span,
        f.values["collector"],
        f.get("protocol", "ipfix"),
        f.get("active_timeout", 60_000),
        f.get("idle_timeout", 15_000),
        f.get("sampling", 1),
    )


MONITOR = {"netflow": Option("block", _netflow)}


def _label(stmt: Stmt) -> str:
    return stmt.args[0].text if stmt.args else ""


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
        "network": (_network, networks),
        "node": (_node, nodes),
        "link": (_link, links),
        "workload": (_workload, workloads),
        "gateway": (_gateway, gateways),
        "service": (_service, services),
        "dns": (_dns, dnss),
        "enterprise": (_enterprise, ents),
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
            if _head(stmt, 0, diags) is None:
                continue
            if stmt.keyword == "dataplane":
                f = _read_block(stmt, DATAPLANE, "dataplane", diags)
                fastpath, fastpath_span = f.get("fastpath", "off"), f.spans.get("fastpath")
            else:
                netflow = _read_block(stmt, MONITOR, "monitor", diags).get("netflow")
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
