"""`hercc route`: the chosen paths and their costs, for people and scripts."""

from __future__ import annotations

from typing import Any

from hercc.diagnostics import UsageError, did_you_mean
from hercc.passes.routing import NetworkRoutes


def route_data(
    routes: dict[str, NetworkRoutes], src: str | None, dst: str | None, network: str | None
) -> list[dict[str, Any]]:
    """One entry per (network, from, to), sorted; checks the names asked for."""
    if network is not None and network not in routes:
        raise UsageError(f"no network {network!r} (networks: {', '.join(sorted(routes))})")
    if src is not None and src == dst:
        raise UsageError(f"--from and --to name the same node, {src}")
    nodes = sorted({node for table in routes.values() for node in table.members})
    for name in (src, dst):
        if name is not None and name not in nodes:
            hint = did_you_mean(name, nodes)
            known = f"; {hint}" if hint else f" (nodes: {', '.join(nodes)})"
            raise UsageError(f"no node named {name!r}{known}")
    chosen = [routes[network]] if network else [routes[n] for n in sorted(routes)]
    out: list[dict[str, Any]] = []
    for table in chosen:
        members = table.members
        for name in (src, dst):
            if name is not None and name not in members and network is not None:
                raise UsageError(f"node {name!r} is not in network {table.network}")
        sources = [src] if src is not None else members
        for a in sources:
            if a not in members:
                continue
            for b in [dst] if dst is not None else members:
                if b == a or b not in members:
                    continue
                out.append(
                    {
                        "network": table.network,
                        "from": a,
                        "to": b,
                        "path": table.path(a, b),
                        "cost": table.cost(a, b),
                    }
                )
    if not out and src is not None and dst is not None:
        raise UsageError(f"nodes {src} and {dst} share no network")
    if not out and (src is not None or dst is not None):
        raise UsageError(f"node {src or dst} shares no network with another node")
    return out


def render_routes(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        hops = " -> ".join(e["path"])
        relays = len(e["path"]) - 2
        via = "direct" if relays == 0 else f"{relays} relay{'s' if relays > 1 else ''}"
        lines.append(f"{e['network']}: {hops}  (cost {e['cost']}, {via})")
    return "\n".join(lines) + ("\n" if lines else "")
