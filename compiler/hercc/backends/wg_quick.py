"""nodes/<node>/wg-quick/<network>.conf: wg-quick(8) files, one per node and network.

Install as /etc/wireguard/<ifname>.conf so that `wg-quick up <ifname>` names the
interface as every other backend does. The private key is never in the file:
a PostUp hook loads it from /etc/hercules/keys/<node>.key. wg-quick's default
routing (a route per AllowedIPs prefix, Table = auto) is kept.
"""

from __future__ import annotations

from hercc import ir
from hercc.backends import wireguard
from hercc.backends.memo import RenderMemo
from hercc.resources.naming import wg_ifname


def render_node(model: ir.IR, node: ir.Node, memo: RenderMemo) -> dict[str, str]:
    files: dict[str, str] = {}
    for membership in wireguard.renderable(node):
        network = wireguard.network_of(model, membership.network)
        name = wg_ifname(membership.network)
        lines = wireguard.header("wg-quick", node.name, membership.network)
        lines += [f"# Install as /etc/wireguard/{name}.conf; start with: wg-quick up {name}"]
        lines += ["", "[Interface]"]
        addresses = wireguard.addresses(model, membership)
        if addresses:
            lines.append(f"Address = {', '.join(addresses)}")
        lines += [
            f"ListenPort = {membership.listen_port}",
            f"MTU = {membership.mtu}",
            f"PostUp = wg set %i private-key {wireguard.key_file(node.name)}",
        ]
        lines += [
            f"PostUp = wg set %i peer {peer.pubkey} preshared-key "
            f"{wireguard.psk_file(membership.network, peer.node)}"
            for peer in wireguard.sorted_peers(membership)
            if peer.psk
        ]
        if membership.forwarding:
            lines.append("PostUp = sysctl -q -w net.ipv4.ip_forward=1")
            # A relay sends packets back out of the interface they came in on; without
            # this, IPv4 answers each with an ICMP redirect that WireGuard peers ignore.
            # The kernel sends them if "all" or the interface says so: turn off both.
            lines.append("PostUp = sysctl -q -w net.ipv4.conf.all.send_redirects=0")
            lines.append("PostUp = sysctl -q -w net.ipv4.conf.%i.send_redirects=0")
            if network.range6 is not None:
                lines.append("PostUp = sysctl -q -w net.ipv6.conf.all.forwarding=1")
        lines += wireguard.peer_blocks(membership, memo)
        files[f"nodes/{node.name}/wg-quick/{membership.network}.conf"] = wireguard.text(lines)
    return files
