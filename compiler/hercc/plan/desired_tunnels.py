"""The desired state of a node's end of its gateway tunnels (called by plan/desired.py).

A tunnel sits in NS = naming.netns(tunnel.network), the namespace of the
network whose workloads it exposes (it routes to their veths, and the node
forwards a gateway's connections to the workloads' own addresses). Per
tunnel to gateway G (IF = naming.gw_ifname(G)):

  wireguard  NS/IF: mtu the node's in the network, up, private_key (the node's
             one key), fwmark None; no listen_port attribute at all: the node
             dials, from whatever port the device picks (the live reader
             reports it, and only desired attributes are compared)
  address    NS/IF/<forward.tunnel_address>/32 (/128), one per exposed workload
  route      NS/<G's tunnel address>/32 (and its IPv6 one /128) dev IF: the
             node's addresses are host routes, so the gateway's end needs one
  peer       NS/IF/<G's public key> (NS/IF/unknown-key:<G> while unknown):
             endpoint address:tunnel, allowed_ips G's tunnel addresses,
             keepalive 25, no preshared key; label "gateway G"
  probe      NS/IF: target G's tunnel address of the family of the node's first
             address on IF (the gateway answers only those), interval 5;
             label "gateway G" (state/probes.py: why a tunnel needs one)

and per namespace that holds tunnels, one table (backends/nftables.py's
`gateway_table`, rendered for that namespace's tunnels under these names):

  nft        NS/inet/hercules-gateways: attrs digest and rules (per chain,
             canonical_nft_rules),
             content the ruleset the executor loads (never compared)

The namespace and its forwarding sysctl are the network's (plan/desired.py):
it hosts the exposed workloads.
"""

from __future__ import annotations

from collections.abc import Iterator

from hercc import ir
from hercc.backends import gateway_tunnels, nftables
from hercc.resources.canonical import (
    canonical_allowed_ips,
    canonical_endpoint,
    canonical_nft_rules,
)
from hercc.resources.ids import AddressId, InterfaceId, NftId, PeerId, RouteId, format_id
from hercc.resources.model import FORCES_NEW, SENSITIVE, Resource
from hercc.resources.naming import Naming
from hercc.state.probes import INTERVAL_S

__all__ = ["tunnel_resources"]


def _probe_target(gw: ir.Gateway, t: ir.Tunnel) -> str | None:
    """What the probe pings: G's tunnel address in the family the node has an address in."""
    mine = gateway_tunnels.node_addresses(t)
    if not mine:
        return None
    return gw.tunnel_address6 if ":" in mine[0] else gw.tunnel_address


def _tunnel(
    gw: ir.Gateway, t: ir.Tunnel, ns: str, ifn: str, mtu: int, private_fp: str | None
) -> Iterator[Resource]:
    wg = Resource(
        "wireguard",
        format_id(InterfaceId(ns, ifn)),
        {"mtu": mtu, "up": True, "private_key": private_fp, "fwmark": None},
        sensitive=SENSITIVE["wireguard"],
        parent=f"netns.{ns}",
    )
    yield wg
    for cidr in gateway_tunnels.node_addresses(t):
        yield Resource("address", format_id(AddressId(ns, ifn, cidr)), parent=wg.address)
    peer = gateway_tunnels.gateway_peer(gw)
    for dst in peer.allowed_ips:
        yield Resource(
            "route", format_id(RouteId(ns, dst)), {"dev": ifn, "via": None}, parent=wg.address
        )
    key_id = gw.pubkey if gw.pubkey is not None else f"unknown-key:{gw.name}"
    assert peer.endpoint is not None  # a node always dials its gateway
    yield Resource(
        "peer",
        format_id(PeerId(ns, ifn, key_id)),
        {
            "endpoint": canonical_endpoint(peer.endpoint),
            "allowed_ips": canonical_allowed_ips(peer.allowed_ips),
            "keepalive": peer.keepalive_s,
            "preshared_key": None,
        },
        sensitive=SENSITIVE["peer"],
        parent=wg.address,
        label=f"gateway {gw.name}",
    )
    target = _probe_target(gw, t)
    if target is not None:
        yield Resource(
            "probe",
            wg.id,
            {"target": target, "interval": INTERVAL_S},
            forces_new=FORCES_NEW["probe"],
            parent=wg.address,
            label=f"gateway {gw.name}",
        )


def tunnel_resources(
    model: ir.IR, node: ir.Node, naming: Naming, private_fp: str | None
) -> Iterator[Resource]:
    """The resources of `node`'s gateway tunnels and their tables (the module docstring)."""
    mine = [(gw, t) for gw in model.gateways for t in gw.tunnels if t.node == node.name]
    mtus = {m.network: m.mtu for m in node.networks}
    for network, tunnels in sorted(nftables.by_network(mine).items()):
        ns = naming.netns(network)
        ifnames = [naming.gw_ifname(gw.name) for gw, _ in tunnels]
        mtu = mtus.get(network, gateway_tunnels.MTU)
        for (gw, t), ifn in zip(tunnels, ifnames, strict=True):
            yield from _tunnel(gw, t, ns, ifn, mtu, private_fp)
        table = nftables.gateway_table(node.name, network, tunnels, ifnames)
        yield Resource(
            "nft",
            format_id(NftId(ns, nftables.FAMILY, nftables.TABLE)),
            {"digest": table.digest, "rules": canonical_nft_rules(table.rules)},
            parent=f"netns.{ns}",
            content=table.text,
        )
