"""Pass: public keys into the IR, before routing copies them onto peers.

A key pinned in the spec (`pubkey`) wins over the keys directory. Private keys
and preshared keys never enter the IR: see secret_files().
"""

from __future__ import annotations

import os
from dataclasses import replace

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.keys import (
    GATEWAY_PREFIX,
    gateway_key_path,
    private_key_path,
    psk_for,
    read_gateway_key,
    read_private_key,
)


def with_public_keys(model: ir.IR, pubkeys: dict[str, str]) -> ir.IR:
    """Every node's public key into the IR, and every gateway's that `pubkeys` has
    ("gateway:<name>").

    A node without a key is an error. A gateway without one keeps `pubkey`
    None: its tunnels' WireGuard files are not written (keys made before
    gateways had keys, or a lab that runs no gateway).
    """
    missing = sorted(n.name for n in model.nodes if n.pubkey is None and n.name not in pubkeys)
    if missing:
        raise OperationError(
            f"no key for node{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            "run `hercc keys init SPEC --keys DIR` (or pin `pubkey` in the spec)"
        )
    nodes = tuple(replace(n, pubkey=n.pubkey or pubkeys[n.name]) for n in model.nodes)
    gateways = tuple(
        replace(g, pubkey=pubkeys.get(GATEWAY_PREFIX + g.name)) for g in model.gateways
    )
    return replace(model, nodes=nodes, gateways=gateways)


def secret_files(model: ir.IR, keys_dir: str) -> dict[str, str]:
    """nodes/<node>/secrets/<node>.key, .../psk/<network>/<peer>.psk and
    gateways/<gateway>/secrets/<gateway>.key (written 0600)."""
    files: dict[str, str] = {}
    for gw in model.gateways:
        if os.path.exists(gateway_key_path(keys_dir, gw.name)):
            files[f"gateways/{gw.name}/secrets/{gw.name}.key"] = (
                read_gateway_key(keys_dir, gw.name) + "\n"
            )
    for node in model.nodes:
        base = f"nodes/{node.name}/secrets"
        if os.path.exists(private_key_path(keys_dir, node.name)):
            files[f"{base}/{node.name}.key"] = read_private_key(keys_dir, node.name) + "\n"
        for m in node.networks:
            for peer in m.peers:
                if peer.psk:
                    a, b = sorted((node.name, peer.node))
                    files[f"{base}/psk/{m.network}/{peer.node}.psk"] = (
                        psk_for(keys_dir, m.network, a, b) + "\n"
                    )
    return files
