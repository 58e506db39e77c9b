"""The `ipsec` kind's attributes and content, one rule for both sides.

An `ipsec` resource is one connection of a node's charon with its CHILD_SA
of the same name (backends/swanctl.py names both <enterprise>-<ipsec>). Its
attributes are what the desired side knows from the IR and the live side can
read over VICI (state/ipsec.py):

  local_addrs, remote_addrs   lists, as `list-conns` reports them
  local_ts, remote_ts         the CHILD_SA's traffic selectors (lists)
  config                      digest of the whole connection as loaded (proposals and
                              ports included, which `list-conns` does not report); the
                              live side takes it from the node's record of what it loaded
  psk                         PSK_LOADED when charon holds the link's key (`get-shared`
                              lists its id); a marker, never a fingerprint: charon does
                              not give keys back, and a short hash of a short PSK would
                              be a dictionary attack away from it
  child                       CHILD_INSTALLED when the CHILD_SA is up (`list-sas`)

The content is the connection as swanctl.conf's tree (the VICI load-conn
message) plus the name of its secret and the remote's id: never the key,
which the executor joins from what was resolved at plan/apply time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hercc.resources.model import FORCES_NEW, SENSITIVE, Resource

__all__ = [
    "CHILD_INSTALLED",
    "DEFAULT_VICI",
    "PSK_LOADED",
    "IpsecContent",
    "config_digest",
    "ipsec_resource",
    "shared_id",
]

DEFAULT_VICI = "/var/run/charon.vici"  # the system charon's VICI socket
PSK_LOADED = "loaded"
CHILD_INSTALLED = "INSTALLED"


def shared_id(connection: str) -> str:
    """The unique id of a connection's PSK in charon (the swanctl.conf secrets section's name)."""
    return f"ike-{connection}"


def config_digest(tree: Mapping[str, Any]) -> str:
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IpsecContent:
    """What the executor loads for one connection (JSON in the resource's content)."""

    connection: str
    tree: Mapping[str, Any]
    secret: str  # the name of the spec's secret("...")
    remote_id: str

    def to_text(self) -> str:
        data = {
            "connection": self.connection,
            "tree": self.tree,
            "secret": self.secret,
            "remote_id": self.remote_id,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> IpsecContent:
        data = json.loads(text)
        return cls(data["connection"], data["tree"], data["secret"], data["remote_id"])


def _child(content: IpsecContent) -> Mapping[str, Any]:
    child: Mapping[str, Any] = content.tree["children"][content.connection]
    return child


def ipsec_resource(content: IpsecContent) -> Resource:
    """The desired resource of `content`."""
    child = _child(content)
    attrs = {
        "local_addrs": list(content.tree["local_addrs"]),
        "remote_addrs": list(content.tree["remote_addrs"]),
        "local_ts": list(child["local_ts"]),
        "remote_ts": list(child["remote_ts"]),
        "config": config_digest(content.tree),
        "psk": PSK_LOADED,
        "child": CHILD_INSTALLED,
    }
    return Resource(
        "ipsec",
        content.connection,
        attrs,
        SENSITIVE.get("ipsec", frozenset()),
        FORCES_NEW.get("ipsec", frozenset()),
        content=content.to_text(),
    )
