"""nodes/<node>/netplan/<network>.yaml: netplan (YAML v2) WireGuard tunnels.

Written against netplan.io 0.106 (Debian 12): `key` is the absolute path of
the private key file (the networkd renderer, systemd >= 242, reads it), never
the key itself; peers carry `keys.public`, `endpoint`, `allowed-ips` and
`keepalive`. Install as /etc/netplan/<file> with mode 0600.

netplan has no setting for IP forwarding: on relays the file says so in a
comment, and forwarding must be turned on another way (sysctl.d).
"""

from __future__ import annotations

from typing import Any

import yaml

from hercc import ir
from hercc.backends import wireguard


def _tunnel(model: ir.IR, node: ir.Node, membership: ir.Membership) -> dict[str, Any]:
    peers: list[dict[str, Any]] = []
    for peer in wireguard.sorted_peers(membership):
        entry: dict[str, Any] = {
            "keys": {"public": peer.pubkey},
            "allowed-ips": list(peer.allowed_ips),
        }
        if peer.endpoint is not None:
            entry["endpoint"] = peer.endpoint
        if peer.keepalive_s is not None:
            entry["keepalive"] = peer.keepalive_s
        if peer.psk:
            entry["keys"]["shared"] = wireguard.psk_file(membership.network, peer.node)
        peers.append(entry)
    tunnel: dict[str, Any] = {
        "mode": "wireguard",
        "port": membership.listen_port,
        "key": wireguard.key_file(node.name),
        "mtu": membership.mtu,
        "peers": peers,
    }
    addresses = wireguard.addresses(model, membership)
    if addresses:
        tunnel["addresses"] = addresses
    return tunnel


def render(model: ir.IR) -> dict[str, str]:
    files: dict[str, str] = {}
    for node in sorted(model.nodes, key=lambda n: n.name):
        for membership in sorted(node.networks, key=lambda m: m.network):
            if not wireguard.keys_known(membership):
                continue
            name = wireguard.ifname(membership.network)
            lines = wireguard.header("netplan", node.name, membership.network)
            if membership.forwarding:
                lines += [
                    f"# This node relays traffic on {name}, and netplan cannot turn on IP",
                    "# forwarding: set net.ipv4.ip_forward=1 (and net.ipv6.conf.all.forwarding=1",
                    "# for IPv6) with sysctl.d.",
                ]
            data = {
                "network": {
                    "version": 2,
                    "tunnels": {name: _tunnel(model, node, membership)},
                }
            }
            body = yaml.safe_dump(
                data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000
            )
            files[f"nodes/{node.name}/netplan/{membership.network}.yaml"] = (
                wireguard.text(lines) + body
            )
    return files
