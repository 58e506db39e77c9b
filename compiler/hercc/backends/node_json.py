"""nodes/<node>/node.json: what one node needs to know about itself.

Per network: its subnets and addresses, listen port and endpoint, MTU,
whether it forwards for others, and its WireGuard peers with their
summarised AllowedIPs. Peers live here, not in ir.json: a node carries only
its own, while a full mesh would put n^2 of them into one file.
"""

from __future__ import annotations

import json
from typing import Any

from hercc import ir
from hercc.backends.gateway_tunnels import node_json as gateway_tunnels
from hercc.backends.memo import RenderMemo

# Each peer is one compact JSON line (json's C encoder) spliced into the
# indented document: the pure-Python indenting encoder needs seconds for the
# million peer entries of a 1,000-node mesh, and peers are shared objects.
_PLACEHOLDER = "\u0000peers:{}\u0000"


def _peer_line(peer: ir.Peer) -> str:
    data: dict[str, Any] = {
        "node": peer.node,
        "pubkey": peer.pubkey,
        "endpoint": peer.endpoint,
        "allowed_ips": list(peer.allowed_ips),
        "keepalive_s": peer.keepalive_s,
        "psk": peer.psk,
    }
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _peers_text(membership: ir.Membership, memo: RenderMemo) -> str:
    network = membership.network

    def join(peers: tuple[ir.Peer, ...]) -> str:
        if not peers:
            return "[]"
        pad = " " * 8
        lines = memo.json_peers.texts(peers, network, _peer_line)
        return "[\n" + ",\n".join(pad + line for line in lines) + "\n      ]"

    return memo.json_lists.text(membership.peers, network, join)


def render_node(model: ir.IR, node: ir.Node, memo: RenderMemo) -> dict[str, str]:
    data = {
        "name": node.name,
        "kind": node.kind,
        "relay": node.relay,
        "pubkey": node.pubkey,
        "networks": {
            m.network: {
                "subnet": m.subnet,
                "subnet6": m.subnet6,
                "address": m.address,
                "address6": m.address6,
                "listen_port": m.listen_port,
                "endpoint": m.endpoint,
                "mtu": m.mtu,
                "forwarding": m.forwarding,
                "peers": _PLACEHOLDER.format(m.network),
            }
            for m in node.networks
        },
        "workloads": memo.workloads_of(model, node.name),
        "gateways": gateway_tunnels(model, node.name, memo),
    }
    text = ir.dumps(data)
    for m in node.networks:
        text = text.replace(json.dumps(_PLACEHOLDER.format(m.network)), _peers_text(m, memo))
    return {f"nodes/{node.name}/node.json": text}
