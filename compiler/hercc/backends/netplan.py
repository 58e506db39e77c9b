"""nodes/<node>/netplan/<network>.yaml: netplan (YAML v2) WireGuard tunnels.

Written against netplan.io 0.106 (Debian 12): `key` is the absolute path of
the private key file (the networkd renderer, systemd >= 242, reads it), never
the key itself; peers carry `keys.public`, `endpoint`, `allowed-ips` and
`keepalive`. Install as /etc/netplan/<file> with mode 0600.

netplan has no setting for IP forwarding: on relays the file says so in a
comment, and forwarding must be turned on another way (sysctl.d).
"""

from __future__ import annotations

import json
from functools import partial
from operator import attrgetter

from hercc import ir
from hercc.backends import wireguard
from hercc.backends.memo import RenderMemo
from hercc.resources.naming import wg_ifname

# YAML is written by hand, not with yaml.safe_dump: a 1,000-node mesh has a
# million peer entries, and PyYAML's emitter takes minutes for them. Every
# string is a JSON string, which is also a valid YAML double-quoted scalar, and
# keys come in sorted order, as safe_dump(sort_keys=True) would put them.


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def peer_yaml(peer: ir.Peer, network: str) -> str:
    lines = ["      - allowed-ips:"]
    lines += [f"        - {_q(p)}" for p in peer.allowed_ips]
    if peer.endpoint is not None:
        lines.append(f"        endpoint: {_q(peer.endpoint)}")
    if peer.keepalive_s is not None:
        lines.append(f"        keepalive: {peer.keepalive_s}")
    lines.append("        keys:")
    lines.append(f"          public: {_q(peer.pubkey or '')}")
    if peer.psk:
        lines.append(f"          shared: {_q(wireguard.psk_file(network, peer.node))}")
    return "\n".join(lines)


def _peers_yaml(membership: ir.Membership, memo: RenderMemo) -> str:
    """The `peers:` of the tunnel, joined once for a peer tuple that nodes share."""
    network = membership.network

    def join(peers: tuple[ir.Peer, ...]) -> str:
        if not peers:
            return "      peers: []"
        entry = partial(peer_yaml, network=network)
        ordered = sorted(peers, key=attrgetter("node"))
        return "\n".join(["      peers:", *memo.netplan_peers.texts(ordered, network, entry)])

    return memo.netplan_lists.text(membership.peers, network, join)


def _tunnel(model: ir.IR, node: ir.Node, membership: ir.Membership, memo: RenderMemo) -> list[str]:
    lines = ["network:", "  tunnels:", f"    {wg_ifname(membership.network)}:"]
    addresses = wireguard.addresses(model, membership)
    if addresses:
        lines.append("      addresses:")
        lines += [f"      - {_q(a)}" for a in addresses]
    lines += [
        f"      key: {_q(wireguard.key_file(node.name))}",
        f"      mode: {_q('wireguard')}",
        f"      mtu: {membership.mtu}",
    ]
    lines.append(_peers_yaml(membership, memo))
    lines += [f"      port: {membership.listen_port}", "  version: 2"]
    return lines


def render_node(model: ir.IR, node: ir.Node, memo: RenderMemo) -> dict[str, str]:
    files: dict[str, str] = {}
    for membership in wireguard.renderable(node):
        name = wg_ifname(membership.network)
        lines = wireguard.header("netplan", node.name, membership.network)
        if membership.forwarding:
            lines += [
                f"# This node relays traffic on {name}, and netplan cannot turn on IP",
                "# forwarding: set net.ipv4.ip_forward=1 (and net.ipv6.conf.all.forwarding=1",
                "# for IPv6) with sysctl.d.",
            ]
        lines += _tunnel(model, node, membership, memo)
        files[f"nodes/{node.name}/netplan/{membership.network}.yaml"] = wireguard.text(lines)
    return files
