"""The IR: typed, immutable, plain data; the contract with every backend.

Serialised as ir.json and validated against schemas/ir.schema.json. Lists are
sorted by name so that the same spec always gives the same bytes, whatever
the order of its statements. Secrets appear only by name. `from_data` reads
ir.json's data back (build_dir.py reads a whole build directory).
"""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

from hercc.diagnostics import OperationError

IR_VERSION = 1
# ir.json's top-level keys that map one to one onto IR fields (the rest are
# ir_version, dataplane and monitor, which ir.json nests differently).
TOPOLOGY_FIELDS = (
    "networks", "nodes", "workloads", "underlay", "gateways", "services", "dns", "enterprise",
)  # fmt: skip


@dataclass(frozen=True)
class Network:
    name: str
    range: str | None
    range6: str | None
    subnet_prefix: int
    subnet6_prefix: int | None
    port: int
    mtu: int
    keepalive_ms: int
    psk: bool


@dataclass(frozen=True)
class Peer:
    """One WireGuard peer of a node in a network (filled by passes/routing.py).

    allowed_ips is summarised: the network's whole range sits behind the node's
    usual next hop, and every destination reached another way is listed
    behind its own next hop as a more specific prefix (WireGuard picks the
    longest prefix, both to send and to accept).
    """

    node: str
    pubkey: str | None  # None until keys are known (hercc keys init, or `pubkey`)
    endpoint: str | None  # None when the peer is nat: it dials us
    allowed_ips: tuple[str, ...]
    keepalive_s: int | None  # set on a nat node's peers, to keep its NAT mapping open
    psk: bool = False  # a preshared key protects this pair (the key itself is a secret file)


@dataclass(frozen=True)
class Membership:
    """A node's place in one network."""

    network: str
    subnet: str | None
    subnet6: str | None
    address: str | None
    address6: str | None
    listen_port: int
    endpoint: str | None  # host:port peers dial; None for a nat node
    mtu: int = 1420
    forwarding: bool = False  # relays traffic between other nodes: needs IP forwarding
    peers: tuple[Peer, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    kind: str  # public | nat
    relay: bool
    pubkey: str | None
    networks: tuple[Membership, ...]


@dataclass(frozen=True)
class Workload:
    name: str
    node: str
    network: str
    address: str | None
    address6: str | None


@dataclass(frozen=True)
class Link:
    a: str  # a < b
    b: str
    cost: int | None  # None: unreachable


@dataclass(frozen=True)
class Underlay:
    public_public_cost: int
    nat_public_cost: int
    links: tuple[Link, ...]


@dataclass(frozen=True)
class Forward:
    """One exposed (workload, port) a gateway may reach through a node's tunnel.

    The gateway connects to `tunnel_address`:`port` (the workload's address on
    the node's end of the tunnel); the node forwards that to the workload's
    own `address`:`port`.
    """

    workload: str
    address: str  # the workload's own address (IPv4, or IPv6 when it has no IPv4)
    tunnel_address: str  # the workload's address in the gateway's tunnel range, same family
    port: int


@dataclass(frozen=True)
class Tunnel:
    """A gateway's WireGuard tunnel to one node that runs an exposed workload.

    The node dials the gateway (filled by passes/gateways.py); the tunnel is
    its own interface on the node (`ifname`, the default naming's), in the
    namespace of `network`, the tenant network of the workloads it exposes
    (its namespace routes to their veths; one network per tunnel, E235).
    """

    node: str
    network: str
    ifname: str
    pubkey: str | None  # the node's public key
    forwards: tuple[Forward, ...]  # sorted; their tunnel addresses are the node's on `ifname`


@dataclass(frozen=True)
class Gateway:
    name: str
    address: str
    address6: str | None
    farmer: str | None
    listen: tuple[int, ...]
    tunnel: int
    pubkey: str | None = None  # None until keys are known (hercc keys init)
    tunnel_range: str | None = None  # this gateway's own slice of the tunnel pool
    tunnel_range6: str | None = None  # only for a gateway with address6
    tunnel_address: str | None = None  # the gateway's end of every tunnel
    tunnel_address6: str | None = None
    tunnels: tuple[Tunnel, ...] = ()


@dataclass(frozen=True)
class Expose:
    protocol: str
    host: str | None
    port: int | None
    via: tuple[str, ...]


@dataclass(frozen=True)
class Health:
    protocol: str
    path: str | None
    interval_ms: int


@dataclass(frozen=True)
class Service:
    name: str
    workloads: tuple[str, ...]  # the replicas, sorted
    port: int
    exposes: tuple[Expose, ...]
    health: Health | None


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str


@dataclass(frozen=True)
class DnsZone:
    zone: str
    ttl: int
    nameservers: tuple[str, ...]
    records: tuple[DnsRecord, ...]
    serial: int = 1  # SOA serial, kept in SPEC.lock; moves on when the zone's content does


@dataclass(frozen=True)
class Vxlan:
    name: str
    node: str
    vni: int
    local: str
    remote: str
    port: int
    bridge: str | None


@dataclass(frozen=True)
class SecretRef:
    secret: str


@dataclass(frozen=True)
class Ipsec:
    name: str
    node: str
    remote: str
    remote_port: int | None
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    auth: str  # psk or pubkey
    psk: SecretRef | None  # with psk
    proposals: tuple[str, ...]
    cert: IpsecCert | None  # with pubkey

    @property
    def secret(self) -> str:
        """The name of the secret the link loads: its PSK, or its certificate's private key."""
        if self.cert is not None:
            return self.cert.key.secret
        assert self.psk is not None  # one of the two, by construction
        return self.psk.secret


@dataclass(frozen=True)
class IpsecCert:
    """Certificate authentication: the node's certificate and the remote's CA (PEM, public),
    the private key by secret name only, the identity the remote must prove."""

    cert: str
    ca: str
    key: SecretRef
    remote_id: str | None


@dataclass(frozen=True)
class Vlan:
    name: str
    node: str
    parent: str
    id: int
    address: str | None


@dataclass(frozen=True)
class Bridge:
    name: str
    node: str
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Enterprise:
    name: str
    vxlan: tuple[Vxlan, ...]
    ipsec: tuple[Ipsec, ...]
    vlan: tuple[Vlan, ...]
    bridge: tuple[Bridge, ...]


@dataclass(frozen=True)
class Netflow:
    collector: str
    protocol: str
    active_timeout_ms: int
    idle_timeout_ms: int
    sampling: int


@dataclass(frozen=True)
class IR:
    networks: tuple[Network, ...]
    nodes: tuple[Node, ...]
    workloads: tuple[Workload, ...]
    underlay: Underlay
    gateways: tuple[Gateway, ...]
    services: tuple[Service, ...]
    dns: tuple[DnsZone, ...]
    enterprise: tuple[Enterprise, ...]
    fastpath: str
    netflow: Netflow | None
    ir_version: int = IR_VERSION

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def _plain(value: Any) -> Any:
    """dataclasses.asdict keeps tuples; JSON (and JSON Schema) want lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_data(ir: IR) -> dict[str, Any]:
    """ir.json: the topology. Per-node peers (O(n^2) in a full mesh) go to node.json only."""
    lean = dataclasses.replace(
        ir,
        nodes=tuple(
            dataclasses.replace(
                n, networks=tuple(dataclasses.replace(m, peers=()) for m in n.networks)
            )
            for n in ir.nodes
        ),
    )
    data = _plain(dataclasses.asdict(lean))
    for node in data["nodes"]:
        for m in node["networks"]:
            del m["peers"]
    return {
        "ir_version": data.pop("ir_version"),
        **{k: data[k] for k in TOPOLOGY_FIELDS},
        "dataplane": {"fastpath": data["fastpath"]},
        "monitor": {"netflow": data["netflow"]},
    }


def dumps(data: Any) -> str:
    """The one JSON layout for every file hercc writes: sorted, indented, newline-terminated."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_json(ir: IR) -> str:
    return dumps(to_data(ir))


def from_data(data: Any) -> IR:
    """The IR of ir.json's data: to_data's inverse, so every membership's peers are empty.

    Raises OperationError naming the first place where `data` is not such an IR.
    """
    if not isinstance(data, dict) or data.get("ir_version") != IR_VERSION:
        raise OperationError(f"not an IR of version {IR_VERSION} (rebuild with this hercc)")
    hints = get_type_hints(IR)
    try:
        fields: dict[str, Any] = {
            name: _decode(hints[name], data[name], name) for name in TOPOLOGY_FIELDS
        }
        fields["fastpath"] = _decode(str, data["dataplane"]["fastpath"], "dataplane.fastpath")
        fields["netflow"] = _decode(hints["netflow"], data["monitor"]["netflow"], "monitor.netflow")
    except (KeyError, TypeError) as exc:
        raise OperationError(f"missing {exc}") from None
    return IR(**fields)


def peers_from_data(data: Any, where: str) -> tuple[Peer, ...]:
    """A membership's peers from their JSON form (a "peers" list of node.json)."""
    peers: tuple[Peer, ...] = _decode(tuple[Peer, ...], data, where)
    return peers


def _decode(tp: Any, value: Any, where: str) -> Any:
    """JSON data into the IR type `tp` (dataclasses, tuples, optionals, scalars)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) != 1:
            raise OperationError(f"{where}: unsupported type {tp}")
        return _decode(args[0], value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise OperationError(f"{where}: expected a list")
        (elem, _ellipsis) = get_args(tp)
        return tuple(_decode(elem, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise OperationError(f"{where}: expected an object")
        hints = get_type_hints(tp)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise OperationError(f"{where}: missing {f.name}")
        return tp(**kwargs)
    if tp in (int, str, bool):
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        if not ok:
            raise OperationError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise OperationError(f"{where}: unsupported type {tp}")
