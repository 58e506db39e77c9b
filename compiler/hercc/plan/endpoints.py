"""Host name endpoints, compared as WireGuard stores them: resolved.

A spec may give an endpoint as `host:port`; a device stores the address the
name resolved to when the peer was set. So before a desired state is
compared with a live one, every host name endpoint is resolved the way the
WireGuard drivers resolve it (`resolve`: hercc.state.resolved_endpoint on a
real node, a fake in tests), and the plan remembers how the spec wrote it, to
show both (`"vpn.example.com:51820" (192.0.2.7:51820)`). A name that does not
resolve stays as written: the plan shows a change, and its apply fails with
the resolver's error, so it never passes silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from hercc.diagnostics import OperationError
from hercc.plan.diff import Plan
from hercc.resources.canonical import is_host_name_endpoint
from hercc.resources.model import State

__all__ = ["Resolver", "resolve_endpoints", "with_written"]

# `host:port` -> `ip:port` (or `[ip6]:port`) as a device would store it; OperationError if not
Resolver = Callable[[str], str]


def resolve_endpoints(desired: State, resolve: Resolver) -> tuple[State, dict[str, str]]:
    """`desired` with its host name endpoints resolved, and {address: endpoint as written}."""
    out = dict(desired)
    written: dict[str, str] = {}
    cache: dict[str, str | None] = {}
    for address, r in desired.items():
        endpoint = r.attrs.get("endpoint")
        if r.kind != "peer" or not isinstance(endpoint, str):
            continue
        if not is_host_name_endpoint(endpoint):
            continue
        if endpoint not in cache:
            try:
                cache[endpoint] = resolve(endpoint)
            except OperationError:
                cache[endpoint] = None
        resolved = cache[endpoint]
        if resolved is not None:
            out[address] = replace(r, attrs={**r.attrs, "endpoint": resolved})
            written[address] = endpoint
    return out, written


def with_written(plan: Plan, written: Mapping[str, str]) -> Plan:
    """`plan` with each resolved endpoint's spelling attached to its change, for the renderer."""
    if not written:
        return plan
    return Plan(
        tuple(
            replace(c, as_written=(("endpoint", written[c.address]),))
            if c.address in written
            else c
            for c in plan.changes
        )
    )
