"""Resource ids, typed: the shapes of the table in resources/model.py.

A Resource keeps its id as text (plans and saved plans hold it so);
`parse_id(shape, text)` reads it into its kind's shape, a NamedTuple that
unpacks (`ns, ifname, pubkey = parse_id(PeerId, text)`), `Resource.id_as`
does the same knowing the kind, and `format_id` writes one back. The last
part of a shape takes the rest of the text: a CIDR ("10.0.0.1/24"), a route's
destination and a public key (base64) may hold "/".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, TypeVar

from hercc.resources.errors import MalformedId
from hercc.resources.naming import WORKLOAD_IFNAME

__all__ = [
    "SHAPES",
    "AddressId",
    "BpfId",
    "ExporterId",
    "HaproxyId",
    "IdT",
    "InterfaceId",
    "IpsecId",
    "NetnsId",
    "NftId",
    "PeerId",
    "ResourceId",
    "RouteId",
    "SysctlId",
    "format_id",
    "parse_id",
    "veth_pair_end",
]


class NetnsId(NamedTuple):
    """netns "<NS>"."""

    ns: str


class ExporterId(NamedTuple):
    """exporter "<node>"."""

    node: str


class InterfaceId(NamedTuple):
    """wireguard, veth, probe, bridge, vxlan, vlan and port "<NS>/<IF>"."""

    ns: str
    ifname: str


class AddressId(NamedTuple):
    """address "<NS>/<IF>/<cidr>"."""

    ns: str
    ifname: str
    cidr: str


class PeerId(NamedTuple):
    """peer "<NS>/<IF>/<public key>"."""

    ns: str
    ifname: str
    pubkey: str


class SysctlId(NamedTuple):
    """sysctl "<NS>/<key>"."""

    ns: str
    key: str


class RouteId(NamedTuple):
    """route "<NS>/<dst>"."""

    ns: str
    dst: str


class NftId(NamedTuple):
    """nft "<NS>/<family>/<table>", e.g. "herc-prod/inet/hercules-gateways"."""

    ns: str
    family: str
    table: str


class BpfId(NamedTuple):
    """bpf "<NS>/<IF>/<hook>": a program attached at a hook of IF ("tc-ingress" or "xdp")."""

    ns: str
    ifname: str
    hook: str


class IpsecId(NamedTuple):
    """ipsec "<connection>": a connection of the node's charon, named <enterprise>-<ipsec>."""

    connection: str


class HaproxyId(NamedTuple):
    """haproxy "<NS>/<gateway>"."""

    ns: str
    gateway: str


ResourceId = (
    NetnsId
    | InterfaceId
    | AddressId
    | PeerId
    | SysctlId
    | RouteId
    | NftId
    | BpfId
    | IpsecId
    | ExporterId
    | HaproxyId
)
IdT = TypeVar(
    "IdT",
    NetnsId,
    InterfaceId,
    AddressId,
    PeerId,
    SysctlId,
    RouteId,
    NftId,
    BpfId,
    IpsecId,
    ExporterId,
    HaproxyId,
)

# kind -> the shape of its ids
SHAPES: Mapping[str, type[ResourceId]] = {
    "netns": NetnsId,
    "sysctl": SysctlId,
    "wireguard": InterfaceId,
    "veth": InterfaceId,
    "address": AddressId,
    "route": RouteId,
    "peer": PeerId,
    "nft": NftId,
    "probe": InterfaceId,
    "bridge": InterfaceId,
    "vxlan": InterfaceId,
    "vlan": InterfaceId,
    "port": InterfaceId,
    "bpf": BpfId,
    "ipsec": IpsecId,
    "exporter": ExporterId,
    "haproxy": HaproxyId,
}


def parse_id(shape: type[IdT], text: str) -> IdT:
    """`text` in `shape`; MalformedId when a part is missing or empty."""
    count = len(shape._fields)
    parts = text.split("/", count - 1)
    if len(parts) != count or not all(parts):
        raise MalformedId(f"{text!r} is no {shape.__name__} ({'/'.join(shape._fields)})")
    return shape(*parts)


def format_id(rid: ResourceId) -> str:
    return "/".join(rid)


def veth_pair_end(a: str, b: str, workload_ifname: str = WORKLOAD_IFNAME) -> str:
    """Which end ("<NS>/<IF>") of a veth pair names its resource: a or b.

    The end that is not the workload's (its interface is not called
    `workload_ifname`); when both or neither are, the smaller id.
    """
    a_inner = parse_id(InterfaceId, a).ifname == workload_ifname
    b_inner = parse_id(InterfaceId, b).ifname == workload_ifname
    if a_inner != b_inner:
        return b if a_inner else a
    return min(a, b)
