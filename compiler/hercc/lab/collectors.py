"""The lab's NetFlow collectors: a namespace at each `monitor netflow` collector address. Pure.

A collector plugs into the underlay bridge like the `internet` namespace and
the gateways (hercc.lab.public): its address as a /32 on `ul` and an
on-link default route. So it is reachable the way a real collector on the
management network is: from every node's underlay namespace (a public
node's on-link default route, a nat node's through its NAT router, which
masquerades), from the gateways and from the internet namespace; not from
a node's overlay namespaces or its workloads, which route only the overlay.
That is where a node's exporter sends from: its underlay namespace, the
host side of a real node.

  <p>-c-<a-b-c-d>   the collector at a.b.c.d (no dots: the bpffs, where the
                    dataplane pins per namespace, refuses names with one),
                    bridge port `c<address as 8 hex digits>` (unique on the
                    bridge, and the same across `lab apply`)

It runs one nfcapd per (address, port) (hercc.lab.collectors_up). The
address must be IPv4 (the lab's underlay is IPv4 only), outside the lab's
NAT ranges (which hold the internet client's), and no node's or gateway's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hercc import ir
from hercc.diagnostics import LabError, OperationError
from hercc.flows.sender import parse_collector
from hercc.lab.public import GatewayHost

# the lab's own ranges (hercc.lab.topology's NAT_INSIDE and NAT_OUTSIDE)
_LAB_RANGES = (ipaddress.IPv4Network("100.64.0.0/10"), ipaddress.IPv4Network("198.18.0.0/15"))


@dataclass(frozen=True)
class Collector:
    """A NetFlow/IPFIX collector on the lab's underlay: its namespace runs nfcapd."""

    address: str  # IPv4, without prefix length
    port: int  # UDP
    ns: str
    bridge_port: str

    @property
    def name(self) -> str:
        """`address:port`, as the spec writes it."""
        return f"{self.address}:{self.port}"


def collector_namespace(prefix: str, address: str) -> str:
    return f"{prefix}-c-{address.replace('.', '-')}"


def bridge_port(address: str) -> str:
    return "c" + format(int(ipaddress.IPv4Address(address)), "08x")


def collectors_of(
    model: ir.IR,
    prefix: str,
    endpoints: Mapping[str, str],
    gateways: tuple[GatewayHost, ...] = (),
) -> tuple[Collector, ...]:
    """The collectors of `model`'s `monitor netflow` (the IR holds one); `endpoints`: public
    node IPs -> node."""
    if model.netflow is None:
        return ()
    taken = {a: f"node {node}" for a, node in endpoints.items()}
    taken |= {g.public_ip: f"gateway {g.gateway}" for g in gateways}
    return (_placed(model.netflow.collector, prefix, taken),)


def _placed(text: str, prefix: str, taken: Mapping[str, str]) -> Collector:
    """The collector at `text` ("host:port"); `taken`: addresses the lab gives to others."""
    try:
        host, port = parse_collector(text)
        ip = ipaddress.ip_address(host)
    except (OperationError, ValueError):
        raise LabError(f"netflow collector {text!r}: the lab needs an IP address") from None
    if ip.version != 4:
        raise LabError(f"netflow collector {text}: the lab's underlay is IPv4 only")
    address = str(ip)
    if address in taken:
        raise LabError(f"netflow collector {text}: {address} is {taken[address]}'s address")
    if any(ip in net for net in _LAB_RANGES):
        raise LabError(f"netflow collector {text}: {address} is inside the lab's NAT ranges")
    return Collector(address, port, collector_namespace(prefix, address), bridge_port(address))


def collector_namespaces(collectors: Iterable[Collector]) -> list[str]:
    """One namespace per address (two ports of one address share it), in order."""
    return list(dict.fromkeys(c.ns for c in collectors))
