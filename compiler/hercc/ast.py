"""The typed AST: what the spec says, every field with its source position.

Defaults are already applied; names are not yet resolved (passes/resolve.py).
`spans` maps a field name (or "field:item") to where it was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hercc.source import Span
from hercc.values import Endpoint, IPAddress, IPInterface, IPNetwork

Spans = Mapping[str, Span]

DEFAULT_SUBNET_PREFIX = 24
SUBNET6_PREFIX = 64
DEFAULT_WG_PORT = 51820
DEFAULT_MTU = 1420
DEFAULT_KEEPALIVE_MS = 25_000
DEFAULT_VXLAN_PORT = 4789
DEFAULT_NETFLOW_PORT = 2055
DEFAULT_DNS_TTL = 300
DEFAULT_LINK_COST = 10


@dataclass(frozen=True)
class NetworkDecl:
    name: str
    span: Span
    range4: IPNetwork | None
    range6: IPNetwork | None
    subnet_prefix: int
    port: int
    mtu: int
    keepalive_ms: int
    psk: bool
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class NodeDecl:
    name: str
    span: Span
    networks: tuple[str, ...]
    endpoint: Endpoint | None
    nat: bool
    pinned_subnets: tuple[IPNetwork, ...]
    relay: bool
    pubkey: str | None
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class LinkDecl:
    a: str
    b: str
    span: Span
    cost: int | None  # None: unreachable
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class WorkloadDecl:
    name: str
    span: Span
    node: str
    network: str | None
    address: IPAddress | None
    address6: IPAddress | None
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class GatewayDecl:
    name: str
    span: Span
    address: IPAddress
    address6: IPAddress | None
    farmer: str | None
    listen: tuple[int, ...]
    tunnel: int
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class Expose:
    protocol: str  # http | https | tcp
    host: str | None  # http, https
    port: int | None  # tcp: the public port
    via: tuple[str, ...]
    span: Span
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class Health:
    protocol: str  # http | tcp
    path: str | None
    interval_ms: int
    span: Span


@dataclass(frozen=True)
class ServiceDecl:
    name: str
    span: Span
    workloads: tuple[str, ...]  # the replicas, as written
    port: int
    exposes: tuple[Expose, ...]
    health: Health | None
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class DnsDecl:
    zone: str
    span: Span
    ttl: int
    nameservers: tuple[str, ...]
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class VxlanDecl:
    name: str
    span: Span
    node: str
    vni: int
    local: IPAddress
    remote: IPAddress
    port: int
    bridge: str | None
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class IpsecDecl:
    name: str
    span: Span
    node: str
    remote: Endpoint
    local_ts: tuple[IPNetwork, ...]
    remote_ts: tuple[IPNetwork, ...]
    auth: str  # psk or pubkey
    secret: str  # the name of the secret (the PSK, or the private key), never its value
    proposals: tuple[str, ...]
    spans: Spans = field(repr=False)
    cert: IpsecCertDecl | None = None  # with auth pubkey


@dataclass(frozen=True)
class IpsecCertDecl:
    """`auth cert`: the certificates as PEM text, read and checked while compiling."""

    cert: str
    ca: str
    remote_id: str | None


@dataclass(frozen=True)
class VlanDecl:
    name: str
    span: Span
    node: str
    parent: str
    vlan_id: int
    address: IPInterface | None
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class BridgeDecl:
    name: str
    span: Span
    node: str
    ports: tuple[str, ...]
    spans: Spans = field(repr=False)


@dataclass(frozen=True)
class EnterpriseDecl:
    name: str
    span: Span
    vxlans: tuple[VxlanDecl, ...]
    ipsecs: tuple[IpsecDecl, ...]
    vlans: tuple[VlanDecl, ...]
    bridges: tuple[BridgeDecl, ...]


@dataclass(frozen=True)
class NetflowDecl:
    span: Span
    collector: Endpoint
    protocol: str
    active_timeout_ms: int
    idle_timeout_ms: int
    sampling: int


@dataclass(frozen=True)
class Spec:
    networks: tuple[NetworkDecl, ...] = ()
    nodes: tuple[NodeDecl, ...] = ()
    links: tuple[LinkDecl, ...] = ()
    workloads: tuple[WorkloadDecl, ...] = ()
    gateways: tuple[GatewayDecl, ...] = ()
    services: tuple[ServiceDecl, ...] = ()
    dns: tuple[DnsDecl, ...] = ()
    enterprises: tuple[EnterpriseDecl, ...] = ()
    fastpath: str = "off"
    fastpath_span: Span | None = None
    netflow: NetflowDecl | None = None
