"""nodes/<node>/networkd/50-hercules-<network>.{netdev,network}: systemd-networkd files.

systemd.netdev(5) creates the WireGuard interface, with its peers, and reads
the private key from /etc/hercules/keys/<node>.key (PrivateKeyFile=; the file
must be readable by the systemd-network user). systemd.network(5) gives the
interface the node's overlay addresses with the prefix of the network range,
so no [Route] section is needed, and turns on IP forwarding on relays.

IPForward= is what systemd 252 (Debian 12) understands; systemd 256 deprecates
it in favour of IPv4Forwarding=/IPv6Forwarding= but still accepts it.
"""

from __future__ import annotations

from functools import partial
from operator import attrgetter

from hercc import ir
from hercc.backends import wireguard
from hercc.backends.memo import RenderMemo
from hercc.resources.naming import wg_ifname

PRIORITY = 50


def _netdev(node: ir.Node, membership: ir.Membership, memo: RenderMemo) -> list[str]:
    lines = wireguard.header("systemd-networkd", node.name, membership.network)
    lines += [
        "",
        "[NetDev]",
        f"Name={wg_ifname(membership.network)}",
        "Kind=wireguard",
        f"MTUBytes={membership.mtu}",
        "",
        "[WireGuard]",
        f"ListenPort={membership.listen_port}",
        f"PrivateKeyFile={wireguard.key_file(node.name)}",
    ]
    network = membership.network

    def join(peers: tuple[ir.Peer, ...]) -> str:
        section = partial(peer_section, network=network)
        ordered = sorted(peers, key=attrgetter("node"))
        return "\n".join(memo.networkd_peers.texts(ordered, network, section))

    if membership.peers:  # joined once for a peer tuple that nodes share
        lines.append(memo.networkd_lists.text(membership.peers, network, join))
    return lines


def peer_section(peer: ir.Peer, network: str) -> str:
    """One [WireGuardPeer] section, with its leading blank line."""
    lines = ["", "[WireGuardPeer]", f"# {peer.node}", f"PublicKey={peer.pubkey}"]
    if peer.endpoint is not None:
        lines.append(f"Endpoint={peer.endpoint}")
    lines.append(f"AllowedIPs={','.join(peer.allowed_ips)}")
    if peer.keepalive_s is not None:
        lines.append(f"PersistentKeepalive={peer.keepalive_s}")
    if peer.psk:
        lines.append(f"PresharedKeyFile={wireguard.psk_file(network, peer.node)}")
    return "\n".join(lines)


def _network(model: ir.IR, node: ir.Node, membership: ir.Membership) -> list[str]:
    network = wireguard.network_of(model, membership.network)
    lines = wireguard.header("systemd-networkd", node.name, membership.network)
    lines += ["", "[Match]", f"Name={wg_ifname(membership.network)}", "", "[Network]"]
    lines += [f"Address={address}" for address in wireguard.addresses(model, membership)]
    if membership.forwarding:
        lines.append("IPForward=yes" if network.range6 is not None else "IPForward=ipv4")
    return lines


def render_node(model: ir.IR, node: ir.Node, memo: RenderMemo) -> dict[str, str]:
    files: dict[str, str] = {}
    for membership in wireguard.renderable(node):
        base = f"nodes/{node.name}/networkd/{PRIORITY}-hercules-{membership.network}"
        files[f"{base}.netdev"] = wireguard.text(_netdev(node, membership, memo))
        files[f"{base}.network"] = wireguard.text(_network(model, node, membership))
    return files
