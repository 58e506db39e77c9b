"""Resources: the one vocabulary of desired state, live state, plans and apply.

A node's state is a set of resources, each with a kind, an id unique within
that kind on the node, and flat JSON-able attributes. The desired state is
built from the IR (plan/desired.py), the live state is read from the kernel
and WireGuard (state/), and the plan is their difference (plan/diff.py).

Kinds and ids (NET is a network name, NS a namespace, IF an interface; the
typed shapes are in resources/ids.py):

  netns      "<NS>"                       a network namespace (one per network on a node,
                                          one per workload)
  wireguard  "<NS>/<IF>"                  a WireGuard interface inside NS; attrs:
                                          listen_port, mtu, up, private_key (a fingerprint,
                                          sensitive), fwmark
  address    "<NS>/<IF>/<cidr>"           an address on an interface; no attrs beyond the id
  peer       "<NS>/<IF>/<public key>"     a WireGuard peer; attrs: endpoint, allowed_ips
                                          (sorted list), keepalive, preshared_key
                                          (a fingerprint; "(unknown)" when a PSK is wanted
                                          but not known; null for none; sensitive);
                                          label: the peer's node name
  sysctl     "<NS>/<key>"                 a sysctl inside NS, e.g. net.ipv4.ip_forward; attr
                                          value, never its default (see below)
  veth       "<NS>/<IF>"                  a veth pair, named by the end `veth_pair_end`
                                          picks; attrs: peer_netns, peer_ifname (the other
                                          end), mtu
  bridge     "<NS>/<IF>"                  an enterprise bridge (plan/desired_links.py; NS is
                                          Naming.links_netns: the host's own on a real node);
                                          attrs: up
  vxlan      "<NS>/<IF>"                  an enterprise VXLAN device; attrs: vni, local,
                                          remote, port, mtu (its underlay's less the 50-byte
                                          overhead), bridge (its master, or null), up; live
                                          also dev (the underlay interface holding `local`,
                                          never compared); vni, local, remote and port
                                          force a new one
  vlan       "<NS>/<IF>"                  an 802.1Q sub-interface; attrs: parent (an existing
                                          interface), vlan_id (both force a new one), up
  port       "<NS>/<IF>"                  an existing interface attached to a bridge of ours:
                                          never owned, so never deleted; deleting the
                                          resource detaches it (nomaster); attrs: bridge
  route      "<NS>/<dst>"                 a route in NS; attrs: dev, via (or null)
  nft        "<NS>/<family>/<table>"      an nftables table in NS (today only
                                          "inet/hercules-gateways", a node's gateway
                                          tunnels); attrs: digest (of the ruleset, from
                                          the table's comment), rules (per chain:
                                          "forward=5 input=1 prerouting=2"); content:
                                          the ruleset the executor loads
  probe      "<NS>/<IF>"                  the liveness probe of a node's tunnel IF to a
                                          gateway: `ping` of the gateway's tunnel address,
                                          running in NS (state/probes.py says why); attrs:
                                          target, interval (seconds); both force a new one.
                                          After the nft table that lets its replies in.
  bpf        "<NS>/<IF>/<hook>"           an eBPF program of the dataplane attached to IF
                                          (hook "tc-ingress" or "xdp"); attrs: program (the
                                          entry point), digest (of its C text with the
                                          generated header, and the namespace's routes),
                                          flow_entries, route_entries (map sizes); content:
                                          what the executor compiles and fills (JSON);
                                          label: the fallback to TC, when there is one
                                          (dataplane/attach.py, plan/desired_dataplane.py)
  ipsec      "<connection>"               a connection of the node's charon (one per `ipsec`
                                          link, <enterprise>-<ipsec>) with its CHILD_SA of the
                                          same name, read over VICI (resources/ipsec.py);
                                          attrs: local_addrs, remote_addrs, local_ts,
                                          remote_ts, config (digest of what was loaded), psk
                                          (a marker, never a fingerprint; sensitive), child
                                          (the CHILD_SA's state); content: what the executor
                                          loads, without the key
  exporter   "<node>"                     the node's flow exporter, `hercc flows export`, a
                                          process (state/exporter_proc.py); attrs: protocol,
                                          collectors (list), active_timeout_ms,
                                          idle_timeout_ms, sampling; all force a new one.
                                          After the programs whose maps it reads.
  haproxy    "<NS>/<gateway>"             a gateway's HAProxy running in NS; attrs: config
                                          (digest), servers (resources/haproxy.py)

Attributes are state: what both the desired state and a live reader can
know, and what the differ compares. `label` is not: it is what the resource
is to a person (a peer's node name, which no device stores), carried by the
desired side only, never compared (a label changing is no change), shown by
the renderer after the address (`  + peer.NS/IF/KEY # beta`), and used by
the executor only to find a peer's preshared key. `content` is not state
either: what the executor loads to make the resource (an nft table's
ruleset, whose digest is an attribute), carried by the desired side only,
never compared, kept in saved plans so they apply exactly.

Secrets never appear: a private or preshared key is represented by its
fingerprint (resources/fingerprints.py), a short hash that tells equal keys
from different ones, and such attributes are listed in `sensitive`
(SENSITIVE, per kind) so renderers print "(sensitive)". `forces_new`
(FORCES_NEW, per kind) lists the attributes whose change cannot be made in
place (the resource is destroyed and created again: "-/+").

Three rules the desired state (plan/desired.py) and the live reader
(state/reader.py) share, each defined once in this package:

  sysctls     a sysctl resource is a value set away from its default
              (resources/sysctl.py, `SYSCTL_DEFAULTS`): the desired state never
              holds a default value, the reader leaves a value at its default
              out, and deleting one writes the default back. So "absent" and
              "default" are one.
  veth pairs  one resource per pair, named by `ids.veth_pair_end`: the end that
              is not the workload's (`WORKLOAD_IFNAME`, Naming.workload_ifname).
  keys        a private key is fingerprinted as a device stores it, clamped
              (`fingerprints.private_key_fingerprint`), whether it comes from a
              keys file or from the device.

`parent` is the address of the resource this one lives in (an address lives
in its wireguard interface, which lives in its netns): apply creates parents
first and destroys children first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hercc.resources.errors import MalformedId
from hercc.resources.ids import SHAPES, IdT, parse_id

__all__ = [
    "FORCES_NEW",
    "KINDS",
    "ORDER",
    "OWNER_ALIAS",
    "SENSITIVE",
    "STATE_DIR",
    "Resource",
    "State",
    "apply_rank",
    "state_of",
]

KINDS = (
    "netns",
    "sysctl",
    "wireguard",
    "veth",
    "bridge",
    "vxlan",
    "vlan",
    "port",
    "address",
    "route",
    "peer",
    "nft",
    "probe",
    "bpf",
    "exporter",
    "ipsec",
    "haproxy",
)
# Creation order by kind (destruction runs it backwards).
ORDER = {kind: i for i, kind in enumerate(KINDS)}


def apply_rank(kind: str, address: str) -> tuple[int, int]:
    """Where a resource is created in a plan: its kind's place in ORDER, then,
    among eBPF attachments, XDP before TC; destruction runs it backwards. XDP
    accounts every packet and the TC program behind it on the same veth none:
    with XDP attached first and detached last, no packet is forwarded without
    being accounted.
    """
    xdp_first = 0 if kind == "bpf" and address.endswith("/xdp") else 1
    return ORDER.get(kind, len(ORDER)), xdp_first


# Per kind: the attributes that hold a fingerprint of a secret.
SENSITIVE: Mapping[str, frozenset[str]] = {
    "wireguard": frozenset({"private_key"}),
    "peer": frozenset({"preshared_key"}),
    "ipsec": frozenset({"psk", "key"}),
}
# Per kind: the attributes whose change replaces the resource.
FORCES_NEW: Mapping[str, frozenset[str]] = {
    "veth": frozenset({"peer_netns", "peer_ifname"}),
    "probe": frozenset({"target", "interval"}),  # a process's arguments
    # the kernel cannot change these on a live VXLAN (networkd ignores a VNI change in place)
    "vxlan": frozenset({"vni", "local", "remote", "port"}),
    "vlan": frozenset({"parent", "vlan_id"}),
    "bpf": frozenset(
        {
            "program",
            "digest",
            "flow_entries",
            "route_entries",
            "mode",
            "peer_tx_checksum",
            "peer_gro",
        }
    ),
    "exporter": frozenset(
        {"protocol", "collectors", "active_timeout_ms", "idle_timeout_ms", "sampling"}
    ),  # a process's config, read once when it starts
}

OWNER_ALIAS = "hercules"  # interface alias prefix marking what Hercules created
STATE_DIR = "/var/lib/hercules"


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    sensitive: frozenset[str] = frozenset()
    forces_new: frozenset[str] = frozenset()
    parent: str | None = None
    label: str | None = None  # for people, never compared (see the module docstring)
    content: str | None = None  # what the executor loads, never compared (ditto)

    @property
    def address(self) -> str:
        """`kind.id`, unique on a node: how plans name a resource."""
        return f"{self.kind}.{self.id}"

    def id_as(self, shape: type[IdT]) -> IdT:
        """The id in `shape` (resources/ids.py); MalformedId unless it is this kind's shape."""
        if SHAPES.get(self.kind) is not shape:
            raise MalformedId(f"{self.address}: a {self.kind} id is no {shape.__name__}")
        return parse_id(shape, self.id)

    def to_data(self) -> dict[str, Any]:
        """JSON data; "label" and "content" only when there is one (never on live resources)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "id": self.id,
            "attrs": dict(self.attrs),
            "sensitive": sorted(self.sensitive),
            "forces_new": sorted(self.forces_new),
            "parent": self.parent,
        }
        if self.label is not None:
            data["label"] = self.label
        if self.content is not None:
            data["content"] = self.content
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Resource:
        return cls(
            kind=data["kind"],
            id=data["id"],
            attrs=dict(data["attrs"]),
            sensitive=frozenset(data["sensitive"]),
            forces_new=frozenset(data["forces_new"]),
            parent=data["parent"],
            label=data.get("label"),
            content=data.get("content"),
        )


State = dict[str, Resource]  # address -> resource


def state_of(resources: list[Resource]) -> State:
    out: State = {}
    for r in resources:
        if r.address in out:
            raise ValueError(f"two resources at {r.address}")
        out[r.address] = r
    return out
