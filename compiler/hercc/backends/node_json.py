"""nodes/<node>/node.json: what one node needs to know about itself."""

from __future__ import annotations

from hercc import ir


def render(model: ir.IR) -> dict[str, str]:
    files: dict[str, str] = {}
    for node in model.nodes:
        data = {
            "name": node.name,
            "kind": node.kind,
            "relay": node.relay,
            "networks": {
                m.network: {
                    "subnet": m.subnet,
                    "subnet6": m.subnet6,
                    "address": m.address,
                    "address6": m.address6,
                    "listen_port": m.listen_port,
                    "endpoint": m.endpoint,
                }
                for m in node.networks
            },
            "workloads": sorted(w.name for w in model.workloads if w.node == node.name),
        }
        files[f"nodes/{node.name}/node.json"] = ir.dumps(data)
    return files
