"""`hercc dataplane status`: a node's pinned objects as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hercc.state.dataplane_status import ObjectStatus

# the per-reason counters shown, in this order (dataplane/account.h)
SHOWN_COUNTERS = ("redirected", "passed", "dropped", "evicted")


def status_data(node: str, objects: Sequence[ObjectStatus]) -> dict[str, Any]:
    return {
        "node": node,
        "objects": [
            {
                "namespace": o.ns,
                "hook": o.hook,
                "digest": o.digest,
                "programs": [
                    {"entry": p.entry, "id": p.prog_id, "devices": list(p.devices)}
                    for p in o.programs
                ],
                "maps": [
                    {"name": m.name, "max_entries": m.max_entries, "in_use": m.in_use}
                    for m in o.maps
                ],
                "counters": dict(sorted(o.counters.items())),
            }
            for o in objects
        ],
    }


def render_status_json(node: str, objects: Sequence[ObjectStatus]) -> str:
    return json.dumps(status_data(node, objects), indent=2) + "\n"


def render_status(node: str, objects: Sequence[ObjectStatus]) -> str:
    if not objects:
        return f"node {node}: no dataplane programs pinned\n"
    out: list[str] = []
    for o in objects:
        out.append(f"{o.ns} {o.hook} {o.digest}")
        for p in o.programs:
            where = ", ".join(p.devices) if p.devices else "not attached"
            out.append(f"  program {p.entry} (id {p.prog_id}): {where}")
        for m in o.maps:
            out.append(f"  map {m.name}: {m.in_use} of {m.max_entries} entries")
        counters = " ".join(f"{name}={o.counters.get(name, 0)}" for name in SHOWN_COUNTERS)
        out.append(f"  counters: {counters}")
    return "\n".join(out) + "\n"
