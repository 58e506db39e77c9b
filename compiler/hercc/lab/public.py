"""The lab's public side: the gateways' namespaces and the `internet` namespace. Pure.

Both plug into the underlay bridge like a public node, with their addresses
as /32 (and /128) and an on-link default route, so every public address
shares the one L2 segment:

  <p>-g-<gateway>   a gateway: its public address (and address6) on `ul`,
                    bridge port `g<i>` (gateways have their own namespace of
                    names, so `g` keeps a gateway apart from a node of the
                    same name: `-n-` against `-g-`)
  <p>-i             the Internet's client and the lab's DNS server, at
                    INTERNET_ADDRESS and INTERNET_ADDRESS6, bridge port `inet`

The client's addresses are fixed, from the benchmarking ranges (RFC 2544's
198.18.0.0/15, whose last address the NAT routers never reach first, and RFC
5180's 2001:2::/48), and checked against every address and range of the spec
(`clashes`): a spec that uses them cannot run in the lab (LabError). A
gateway's public address must not be a node's endpoint either.

A gateway's WireGuard interface is named `<p>g<i>`: unique on the machine,
like the nodes' `<p>w<i>` (wireguard-go's socket /var/run/wireguard/<IF>.sock
is shared by every namespace).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from hercc import ir
from hercc.diagnostics import LabError

INTERNET_ADDRESS = "198.19.255.254"
INTERNET_ADDRESS6 = "2001:2::fe"
INTERNET_PORT = "inet"
# networks wider than these are "anywhere" (a default route, an allowed 0.0.0.0/0), not a clash
_WIDEST = {4: 8, 6: 16}


@dataclass(frozen=True)
class GatewayHost:
    """A gateway on the lab's underlay."""

    gateway: str
    ns: str
    address: str  # with prefix length, on `ul`
    address6: str | None
    port: str  # its port on the underlay bridge
    wg_if: str  # its WireGuard interface (one per gateway, every tunnel a peer)

    @property
    def public_ip(self) -> str:
        return self.address.split("/")[0]

    @property
    def public_ip6(self) -> str | None:
        return None if self.address6 is None else self.address6.split("/")[0]


@dataclass(frozen=True)
class Internet:
    """The `internet` namespace: the client of every public path, and the DNS server."""

    ns: str
    address: str  # without prefix length
    address6: str
    port: str = INTERNET_PORT


def gateway_namespace(prefix: str, gateway: str) -> str:
    return f"{prefix}-g-{gateway}"


def internet_namespace(prefix: str) -> str:
    return f"{prefix}-i"


def gateway_wg_name(prefix: str, index: int) -> str:
    return f"{prefix}g{index}"


def spec_networks(model: ir.IR) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every IP address (as a /32, /128) and range written anywhere in the IR, endpoints too."""
    stack: list[object] = [model]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            net = _as_network(item)
            if net is not None and net.prefixlen >= _WIDEST[net.version]:
                yield net
        elif isinstance(item, tuple | list):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))


def _as_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if "." not in text and ":" not in text:
        return None  # a name, or a number
    for candidate in (text, text.rsplit(":", 1)[0].strip("[]")):  # also `host:port`
        try:
            return ipaddress.ip_network(candidate, strict=False)
        except ValueError:
            continue
    return None


def clashes(model: ir.IR, address: str) -> list[str]:
    """The spec's addresses and ranges that hold `address`."""
    ip = ipaddress.ip_address(address)
    return sorted({str(n) for n in spec_networks(model) if n.version == ip.version and ip in n})


def public_of(
    model: ir.IR, prefix: str, endpoints: dict[str, str]
) -> tuple[tuple[GatewayHost, ...], Internet]:
    """The gateways of `model` and the internet namespace; `endpoints`: public node IPs -> node."""
    for address in (INTERNET_ADDRESS, INTERNET_ADDRESS6):
        held = clashes(model, address)
        if held:
            raise LabError(
                f"the lab's Internet client {address} is inside the spec's {', '.join(held)}: "
                "the lab cannot run this spec"
            )
    gateways = []
    for i, gw in enumerate(model.gateways):
        if gw.address in endpoints:
            raise LabError(f"gateway {gw.name} and node {endpoints[gw.address]} share {gw.address}")
        ip = ipaddress.ip_address(gw.address)
        if ip.version != 4:
            raise LabError(f"gateway {gw.name}: `address` must be IPv4 in the lab ({gw.address})")
        gateways.append(
            GatewayHost(
                gw.name,
                gateway_namespace(prefix, gw.name),
                f"{gw.address}/32",
                None if gw.address6 is None else f"{gw.address6}/128",
                f"g{i}",
                gateway_wg_name(prefix, i),
            )
        )
    internet = Internet(internet_namespace(prefix), INTERNET_ADDRESS, INTERNET_ADDRESS6)
    return tuple(gateways), internet
