"""gateways/<gateway>/gateway.json: the gateway's desired state, for plan and apply.

Its public addresses and ports, its tunnel (interface, port, addresses,
ranges, and its peers by public key), and what HAProxy serves: the
frontends (routes by host) and the backends (servers by workload), from the
same view as haproxy.cfg (gateway_model.py). No secret: the private key is
named by path only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hercc import ir
from hercc.backends import wireguard
from hercc.backends.gateway_model import view
from hercc.backends.gateway_tunnels import node_peer
from hercc.backends.memo import RenderMemo
from hercc.resources.naming import gateway_ifname


def gateway_data(model: ir.IR, gw: ir.Gateway) -> dict[str, Any]:
    v = view(model, gw)
    return {
        "name": gw.name,
        "farmer": gw.farmer,
        "address": gw.address,
        "address6": gw.address6,
        "listen": list(gw.listen),
        "tunnel": {
            "ifname": gateway_ifname(gw.name),
            "listen_port": gw.tunnel,
            "address": gw.tunnel_address,
            "address6": gw.tunnel_address6,
            "range": gw.tunnel_range,
            "range6": gw.tunnel_range6,
            "pubkey": gw.pubkey,
            "private_key_file": wireguard.key_file(gw.name),
            "peers": [
                {"node": p.node, "pubkey": p.pubkey, "allowed_ips": list(p.allowed_ips)}
                for p in (node_peer(t) for t in gw.tunnels)
            ],
        },
        "frontends": [
            {
                "name": fe.name,
                "protocol": fe.protocol,
                "port": fe.port,
                "routes": dict(fe.routes),
                "backend": fe.backend,
            }
            for fe in v.frontends
        ],
        "backends": [
            {
                "name": be.name,
                "mode": be.mode,
                "service": be.service,
                "balance": "roundrobin",
                "health": None if be.health is None else dataclasses.asdict(be.health),
                "servers": [dataclasses.asdict(s) for s in be.servers],
            }
            for be in v.backends
        ],
    }


def render_gateways(model: ir.IR, _memo: RenderMemo) -> dict[str, str]:
    return {
        f"gateways/{gw.name}/gateway.json": ir.dumps(gateway_data(model, gw))
        for gw in model.gateways
    }
