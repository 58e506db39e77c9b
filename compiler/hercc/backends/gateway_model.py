"""What one gateway serves, in the terms HAProxy and gateway.json share.

A pure view of the IR: per gateway, its frontends (one per public port that
something is exposed on) and its backends (one per service and mode, one
server per replica). haproxy.py renders it as haproxy.cfg, gateway_json.py
as gateway.json, so the two never disagree.

Ports: `https` exposes are served on 443 and `http` exposes on 80, each only
when the gateway listens there (passes/check.py says so otherwise, E234);
`tcp PORT` exposes get a frontend on PORT.
"""

from __future__ import annotations

from dataclasses import dataclass

from hercc import ir
from hercc.passes.gateways import PROTOCOL_PORTS


@dataclass(frozen=True)
class Server:
    workload: str
    node: str
    address: str  # the workload's tunnel address
    port: int


@dataclass(frozen=True)
class Backend:
    name: str
    mode: str  # http | tcp
    service: str
    health: ir.Health | None
    tls: bool  # the servers speak TLS (https exposes): an HTTP health check goes over TLS
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Frontend:
    name: str
    protocol: str  # https (SNI routing) | http (Host routing) | tcp
    port: int
    routes: tuple[tuple[str, str], ...]  # (host, backend), sorted; empty for tcp
    backend: str | None  # tcp: the one backend


@dataclass(frozen=True)
class GatewayView:
    gateway: ir.Gateway
    frontends: tuple[Frontend, ...]
    backends: tuple[Backend, ...]


def backend_name(service: str, mode: str) -> str:
    return f"svc-{service}-{mode}"


def view(model: ir.IR, gw: ir.Gateway) -> GatewayView:
    """The frontends and backends of one gateway, sorted by port and by name."""
    servers = _servers(model, gw)
    backends: dict[str, Backend] = {}
    routes: dict[tuple[str, int], dict[str, str]] = {}
    tcp: dict[int, str] = {}
    for svc in model.services:
        for ex in svc.exposes:
            if gw.name not in ex.via:
                continue
            mode = "http" if ex.protocol == "http" else "tcp"
            name = backend_name(svc.name, mode)
            tls = ex.protocol == "https" or backends.get(name, _NO_TLS).tls
            backends[name] = Backend(
                name, mode, svc.name, svc.health, tls, servers.get((svc.name, svc.port), ())
            )
            if ex.protocol == "tcp":
                assert ex.port is not None
                tcp[ex.port] = name
            else:
                assert ex.host is not None
                port = PROTOCOL_PORTS[ex.protocol]
                routes.setdefault((ex.protocol, port), {})[ex.host.lower()] = name
    frontends = [
        Frontend(f"{protocol}-{port}", protocol, port, tuple(sorted(r.items())), None)
        for (protocol, port), r in routes.items()
    ]
    frontends += [Frontend(f"tcp-{port}", "tcp", port, (), name) for port, name in tcp.items()]
    return GatewayView(
        gw,
        tuple(sorted(frontends, key=lambda f: f.port)),
        tuple(sorted(backends.values(), key=lambda b: b.name)),
    )


_NO_TLS = Backend("", "tcp", "", None, False, ())


def _servers(model: ir.IR, gw: ir.Gateway) -> dict[tuple[str, int], tuple[Server, ...]]:
    """(service, port) -> one server per replica the gateway's tunnels reach."""
    forwards = {(f.workload, f.port): (t.node, f) for t in gw.tunnels for f in t.forwards}
    out: dict[tuple[str, int], tuple[Server, ...]] = {}
    for svc in model.services:
        found = [forwards.get((w, svc.port)) for w in svc.workloads]
        out[(svc.name, svc.port)] = tuple(
            Server(f.workload, node, f.tunnel_address, f.port)
            for node, f in (x for x in found if x is not None)
        )
    return out
