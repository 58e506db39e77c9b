"""The desired state of one gateway: its tunnel end and its HAProxy, from the IR.

A gateway is a node with other resources (plan/gateway_service.py plans and
applies it with the node's differ and executor). In its namespace NS and
under its interface name IF (resources/gateway_naming.py, GatewayNaming):

  wireguard  NS/IF: listen_port = the gateway's `tunnel` port, mtu (the tunnel
             files' MTU), up, private_key (the fingerprint of
             KEYS/gateways/<gw>.key, looked up as "gateway:<gw>": see
             `GatewayKeys`), fwmark None
  address    NS/IF/<tunnel_address>/<prefix of its tunnel range>, and the IPv6 one
  peer       NS/IF/<node's public key> per node that tunnels to it (ir.Gateway.tunnels),
             labelled with the node: allowed_ips = the tunnel addresses of that
             node's forwards (/32, /128), no endpoint (the node dials, the gateway
             never does), no keepalive, no preshared key; a node without a known
             key is NS/IF/unknown-key:<node>
  haproxy    NS/<gw>: config (digest) and servers (resources/haproxy.py) of the
             haproxy.cfg backends/haproxy.py renders, its runtime API on the
             gateway's admin socket; the text itself is the resource's
             `content` (never compared; kept in saved plans, like an nft table's)

No namespace resource (the gateway's namespace is the host's own, or made by
whoever runs the gateway), no sysctl: the gateway never forwards between its
peers, and net.ipv4.ip_forward = 0 is the default (resources/sysctl.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from hercc import ir
from hercc.backends.gateway_model import view
from hercc.backends.gateway_tunnels import MTU, gateway_addresses, node_peer
from hercc.backends.haproxy import render_view
from hercc.diagnostics import OperationError
from hercc.plan.desired import KeyLookup
from hercc.resources.canonical import canonical_allowed_ips
from hercc.resources.fingerprints import private_key_fingerprint
from hercc.resources.gateway_naming import GatewayNaming
from hercc.resources.haproxy import config_digest, config_servers, haproxy_resource
from hercc.resources.ids import AddressId, InterfaceId, PeerId, format_id
from hercc.resources.model import SENSITIVE, Resource, State, state_of

__all__ = ["GatewayKeys", "gateway_desired"]


@dataclass(frozen=True)
class GatewayKeys:
    """A KeyLookup for gateways from a `hercc keys` directory: "gateway:<gw>" -> its key."""

    keys_dir: str

    def private_key(self, node: str) -> str | None:
        from hercc.keys import GATEWAY_PREFIX, gateway_key_path, read_gateway_key

        if not node.startswith(GATEWAY_PREFIX):
            return None
        gateway = node[len(GATEWAY_PREFIX) :]
        if not os.path.lexists(gateway_key_path(self.keys_dir, gateway)):
            return None
        return read_gateway_key(self.keys_dir, gateway)

    def psk(self, network: str, a: str, b: str) -> str | None:
        return None  # a gateway's tunnels have no preshared keys


def _gateway(model: ir.IR, name: str) -> ir.Gateway:
    for gw in model.gateways:
        if gw.name == name:
            return gw
    raise OperationError(f"gateway {name} is not in the spec")


def _tunnel(gw: ir.Gateway, naming: GatewayNaming, keys: KeyLookup | None) -> Iterator[Resource]:
    ns, ifn = naming.netns, naming.ifname
    private = keys.private_key(naming.owner) if keys is not None else None
    try:
        private_fp = private_key_fingerprint(private) if private is not None else None
    except OperationError:
        raise OperationError(
            f"gateway {gw.name}: its private key is not 32 bytes of base64 (check the keys)"
        ) from None
    wg = Resource(
        "wireguard",
        format_id(InterfaceId(ns, ifn)),
        {
            "listen_port": gw.tunnel,
            "mtu": MTU,
            "up": True,
            "private_key": private_fp,
            "fwmark": None,
        },
        sensitive=SENSITIVE["wireguard"],
    )
    yield wg
    for cidr in gateway_addresses(gw):
        yield Resource("address", format_id(AddressId(ns, ifn, cidr)), parent=wg.address)
    for t in sorted(gw.tunnels, key=lambda t: t.node):
        p = node_peer(t)
        key_id = p.pubkey if p.pubkey is not None else f"unknown-key:{p.node}"
        yield Resource(
            "peer",
            format_id(PeerId(ns, ifn, key_id)),
            {
                "allowed_ips": canonical_allowed_ips(p.allowed_ips),
                "keepalive": p.keepalive_s or None,
                "preshared_key": None,
            },
            sensitive=SENSITIVE["peer"],
            parent=wg.address,
            label=p.node,
        )


def gateway_desired(model: ir.IR, naming: GatewayNaming, keys: KeyLookup | None = None) -> State:
    """What `model` asks of gateway `naming.gateway`. OperationError for an unknown gateway."""
    gw = _gateway(model, naming.gateway)
    text = render_view(view(model, gw), str(naming.haproxy.admin_socket))
    proxy = haproxy_resource(naming.netns, gw.name, text, config_digest(text), config_servers(text))
    resources = [*_tunnel(gw, naming, keys), proxy]
    try:
        state = state_of(resources)
    except ValueError as exc:
        raise OperationError(f"gateway {gw.name}: names collide: {exc}") from None
    return dict(sorted(state.items()))
