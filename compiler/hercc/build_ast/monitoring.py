"""The once-per-spec statements: dataplane (the fast path) and monitor (flow export)."""

from __future__ import annotations

from hercc import ast, values
from hercc.diagnostics import Collector
from hercc.source import Span
from hercc.syntax import Stmt

from .fields import Option, read_block, read_head

DATAPLANE = {"fastpath": Option("one", values.choice("xdp", "tc", "off"))}
NETFLOW = {
    "collector": Option("one", values.endpoint, required=True),
    "protocol": Option("one", values.choice("ipfix", "v9")),
    "active_timeout": Option("one", values.flow_timeout),
    "idle_timeout": Option("one", values.flow_timeout),
    "sampling": Option("one", values.integer(1, 1_000_000, "sampling rate")),
}


def _netflow(stmt: Stmt, diags: Collector) -> ast.NetflowDecl | None:
    if read_head(stmt, 0, diags) is None:
        return None
    f = read_block(stmt, NETFLOW, "netflow", diags)
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


def dataplane(stmt: Stmt, diags: Collector) -> tuple[str, Span | None]:
    """The fast path ("off" unless given) and where it was given."""
    f = read_block(stmt, DATAPLANE, "dataplane", diags)
    return f.get("fastpath", "off"), f.spans.get("fastpath")


def monitor(stmt: Stmt, diags: Collector) -> ast.NetflowDecl | None:
    netflow: ast.NetflowDecl | None = read_block(stmt, MONITOR, "monitor", diags).get("netflow")
    return netflow
