"""Resources: the one vocabulary of desired state, live state, plans and apply.

A node's state is a set of resources, each with a kind, an id unique within
that kind on the node, and flat JSON-able attributes. The desired state is
built from the IR (plan/desired.py), the live state is read from the kernel
and WireGuard (state/), and the plan is their difference (plan/diff.py).

Kinds and ids (NET is a network name, NS a namespace, IF an interface):

  netns      "<NS>"                       a network namespace (one per network on a node,
                                          one per workload)
  wireguard  "<NS>/<IF>"                  a WireGuard interface inside NS; attrs:
                                          listen_port, mtu, up, private_key (a fingerprint,
                                          sensitive), fwmark
  address    "<NS>/<IF>/<cidr>"           an address on an interface; no attrs beyond the id
  peer       "<NS>/<IF>/<public key>"     a WireGuard peer; attrs: endpoint, allowed_ips
                                          (sorted list), keepalive, preshared_key
                                          (fingerprint or null, sensitive), name
  sysctl     "<NS>/<key>"                 a sysctl inside NS, e.g. net.ipv4.ip_forward; attr value
  veth       "<NS>/<IF>"                  a veth end in NS; attrs: peer_netns, peer_ifname, mtu
  route      "<NS>/<dst>"                 a route in NS; attrs: dev, via (or null)

Secrets never appear: a private or preshared key is represented by
`fingerprint(key)`, a short hash that tells equal keys from different ones,
and such attributes are listed in `sensitive` so renderers print
"(sensitive)". `forces_new` lists the attributes whose change cannot be made
in place (the resource is destroyed and created again: "-/+").

`parent` is the address of the resource this one lives in (an address lives
in its wireguard interface, which lives in its netns): apply creates parents
first and destroys children first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("netns", "sysctl", "wireguard", "veth", "address", "route", "peer")
# Creation order by kind (destruction runs it backwards).
ORDER = {kind: i for i, kind in enumerate(KINDS)}

OWNER_ALIAS = "hercules"  # interface alias prefix marking what Hercules created
STATE_DIR = "/var/lib/hercules"


def fingerprint(secret: str) -> str:
    """A short, stable stand-in for a key: equal keys, equal fingerprints; never the key."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    sensitive: frozenset[str] = frozenset()
    forces_new: frozenset[str] = frozenset()
    parent: str | None = None

    @property
    def address(self) -> str:
        """`kind.id`, unique on a node: how plans name a resource."""
        return f"{self.kind}.{self.id}"

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "attrs": dict(self.attrs),
            "sensitive": sorted(self.sensitive),
            "forces_new": sorted(self.forces_new),
            "parent": self.parent,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Resource:
        return cls(
            kind=data["kind"],
            id=data["id"],
            attrs=dict(data["attrs"]),
            sensitive=frozenset(data["sensitive"]),
            forces_new=frozenset(data["forces_new"]),
            parent=data["parent"],
        )


State = dict[str, Resource]  # address -> resource


def state_of(resources: list[Resource]) -> State:
    out: State = {}
    for r in resources:
        if r.address in out:
            raise ValueError(f"two resources at {r.address}")
        out[r.address] = r
    return out
