"""gateways/<gateway>/haproxy.cfg: the gateway's HAProxy (2.6, Debian 12) configuration.

Per public port a frontend on the gateway's public addresses:

* `https` (443): mode tcp; the TLS ClientHello is inspected (`req.ssl_sni`)
  and the connection passed on unterminated, so the certificate stays with
  the workload. An unknown or missing SNI is rejected.
* `http` (80): mode http, routed on the Host header (port stripped, case
  ignored); an unknown host gets a 404.
* `tcp PORT`: mode tcp, straight to the service's backend.

A backend per service and mode balances round robin over the replicas, each
server at the workload's tunnel address and the service's port, checked
every `health` interval (an HTTP check goes over TLS for https exposes).
An http backend reuses its idle server connections for any client
(`http-reuse always`); docs/gateway-performance.md has the measurements.

Prometheus metrics (Debian builds HAProxy with USE_PROMEX) are served at
http://127.0.0.1:8405/metrics, on the gateway's loopback only: neither the
Internet nor the tunnels' nodes can reach them. The runtime API socket
(with `expose-fd listeners`, so that a reload hands the listening sockets
to the new worker) is a parameter of `render_view`: the build writes
/run/haproxy/admin.sock, as Debian's own configuration has it; a gateway
applied by hercc has its own (resources/gateway_naming.py, HaproxyPaths).
`maxconn` is left to HAProxy, which derives it from the file descriptor
limit it is given: a fixed one above what that limit allows (2 FDs per
connection) makes HAProxy refuse to start.
"""

from __future__ import annotations

from hercc import ir
from hercc.backends.gateway_model import Backend, Frontend, GatewayView, view
from hercc.backends.memo import RenderMemo

STATS_BIND = "127.0.0.1:8405"
INSPECT_DELAY = "5s"
NOT_FOUND = 'content-type text/plain string "unknown host\\n"'
ADMIN_SOCKET = "/run/haproxy/admin.sock"


def _global(admin_socket: str) -> list[str]:
    return [
        "global",
        f"    stats socket {admin_socket} mode 660 level admin expose-fd listeners",
        "    stats timeout 30s",
        "",
        *_DEFAULTS,
    ]


_DEFAULTS = [
    "defaults",
    "    timeout connect 5s",
    "    timeout client 60s",
    "    timeout server 60s",
    "    timeout tunnel 1h",
    "    timeout http-request 10s",
    "    timeout http-keep-alive 10s",
    "    timeout check 5s",
    "",
    "frontend stats",
    "    mode http",
    f"    bind {STATS_BIND}",
    "    http-request use-service prometheus-exporter if { path /metrics }",
    "    http-request return status 404",
]


def _binds(gw: ir.Gateway, port: int) -> list[str]:
    lines = [f"    bind {gw.address}:{port}"]
    if gw.address6 is not None:
        lines.append(f"    bind [{gw.address6}]:{port}")
    return lines


def _frontend(gw: ir.Gateway, fe: Frontend) -> list[str]:
    lines = ["", f"frontend {fe.name}"]
    if fe.protocol == "http":
        lines += ["    mode http", *_binds(gw, fe.port)]
        hosts = " ".join(host for host, _ in fe.routes)
        lines.append(f"    acl known_host req.hdr(host),host_only,lower -m str {hosts}")
        lines.append(f"    http-request return status 404 {NOT_FOUND} if !known_host")
        lines += [
            f"    use_backend {backend} if {{ req.hdr(host),host_only,lower -m str {host} }}"
            for host, backend in fe.routes
        ]
        return lines
    lines += ["    mode tcp", *_binds(gw, fe.port)]
    if fe.protocol == "https":
        hosts = " ".join(host for host, _ in fe.routes)
        lines += [
            f"    tcp-request inspect-delay {INSPECT_DELAY}",
            f"    acl known_sni req.ssl_sni,lower -m str {hosts}",
            "    tcp-request content accept if { req.ssl_hello_type 1 } known_sni",
            "    tcp-request content reject",
        ]
        lines += [
            f"    use_backend {backend} if {{ req.ssl_sni,lower -m str {host} }}"
            for host, backend in fe.routes
        ]
    else:
        lines.append(f"    default_backend {fe.backend}")
    return lines


def _backend(be: Backend) -> list[str]:
    lines = ["", f"backend {be.name}", f"    mode {be.mode}", "    balance roundrobin"]
    if be.mode == "http":
        # Idle connections to the servers serve any client's next request: a new client
        # connection then costs no new connection (and handshake) through the tunnel.
        lines.append("    http-reuse always")
    check = ""
    if be.health is not None:
        check = f" check inter {be.health.interval_ms}ms"
        if be.health.protocol == "http":
            lines += ["    option httpchk", f"    http-check send meth GET uri {be.health.path}"]
            if be.tls:
                check += " check-ssl verify none"
    lines += [f"    server {s.workload} {_host(s.address)}:{s.port}{check}" for s in be.servers]
    return lines


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def render_view(v: GatewayView, admin_socket: str = ADMIN_SOCKET) -> str:
    """haproxy.cfg of one gateway, its runtime API on `admin_socket`."""
    gw = v.gateway
    lines = [
        f"# Generated by hercc (haproxy): gateway {gw.name}.",
        "# Do not edit: rebuild from the spec instead. Check with: haproxy -c -f haproxy.cfg",
        "",
        *_global(admin_socket),
    ]
    for fe in v.frontends:
        lines += _frontend(gw, fe)
    for be in v.backends:
        lines += _backend(be)
    return "\n".join(lines) + "\n"


def render_gateways(model: ir.IR, _memo: RenderMemo) -> dict[str, str]:
    return {
        f"gateways/{gw.name}/haproxy.cfg": render_view(view(model, gw)) for gw in model.gateways
    }
