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
  cert, ca                    with certificates instead: the fingerprints (SHA-256 of the
                              DER) of the node's certificate and the remote's CA; public.
                              The live side, like `config`, takes them from the record
                              of what was loaded (charon's `list-certs` holds no link)
  key                         with certificates: KEY_LOADED when charon holds the private
                              key of `cert` (`get-keys` lists its key id); sensitive, a
                              marker like `psk`
  child                       CHILD_INSTALLED when the CHILD_SA is up (`list-sas`)

The content is the connection as swanctl.conf's tree (the VICI load-conn
message) plus the name of its secret and the remote's id, and with
certificates their PEM by the tree's file names (`certs`): never the key,
which the executor joins from what was resolved at plan/apply time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hercc.resources.model import FORCES_NEW, SENSITIVE, Resource

__all__ = [
    "CHILD_INSTALLED",
    "DEFAULT_VICI",
    "KEY_LOADED",
    "PSK_LOADED",
    "IpsecContent",
    "cert_fingerprint",
    "config_digest",
    "credentials",
    "ipsec_resource",
    "key_id",
    "key_matches",
    "shared_id",
]

DEFAULT_VICI = "/var/run/charon.vici"  # the system charon's VICI socket
PSK_LOADED = "loaded"
KEY_LOADED = "loaded"
CHILD_INSTALLED = "INSTALLED"


def shared_id(connection: str) -> str:
    """The unique id of a connection's PSK in charon (the swanctl.conf secrets section's name)."""
    return f"ike-{connection}"


def config_digest(tree: Mapping[str, Any]) -> str:
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cert_fingerprint(pem: str) -> str:
    """A certificate's fingerprint: SHA-256 of its DER (a public value)."""
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def key_id(cert_pem: str) -> str:
    """The id charon gives the private key of this certificate (`load-key`, `get-keys`):
    SHA-1 of the public key's PKCS#1 DER, in hex."""
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    return hashlib.sha1(key.public_bytes(Encoding.DER, PublicFormat.PKCS1)).hexdigest()


def key_matches(key_pem: str, cert_pem: str) -> bool:
    """Whether `key_pem` is an unencrypted PEM private key whose public half is the
    certificate's (never raises with key material in a message)."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    cert_key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    pub = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*pub) == cert_key.public_bytes(*pub)


@dataclass(frozen=True)
class IpsecContent:
    """What the executor loads for one connection (JSON in the resource's content)."""

    connection: str
    tree: Mapping[str, Any]
    secret: str  # the name of the spec's secret("..."): the PSK, or the private key
    remote_id: str
    certs: Mapping[str, str] = field(default_factory=dict)  # x509/<c>.pem, x509ca/<c>.pem: PEM

    @property
    def cert(self) -> str | None:
        """The node's certificate (PEM), with certificate authentication."""
        return next((t for p, t in sorted(self.certs.items()) if p.startswith("x509/")), None)

    @property
    def ca(self) -> str | None:
        return next((t for p, t in sorted(self.certs.items()) if p.startswith("x509ca/")), None)

    def to_text(self) -> str:
        data: dict[str, Any] = {
            "connection": self.connection,
            "tree": self.tree,
            "secret": self.secret,
            "remote_id": self.remote_id,
        }
        if self.certs:  # absent with a PSK: such content reads as it always did
            data["certs"] = dict(self.certs)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> IpsecContent:
        data = json.loads(text)
        return cls(
            data["connection"],
            data["tree"],
            data["secret"],
            data["remote_id"],
            data.get("certs", {}),
        )


def _child(content: IpsecContent) -> Mapping[str, Any]:
    child: Mapping[str, Any] = content.tree["children"][content.connection]
    return child


def _credentials(content: IpsecContent) -> dict[str, str]:
    """psk, or cert, ca and key (see the module docstring)."""
    if content.cert is None or content.ca is None:
        return {"psk": PSK_LOADED}
    ca = cert_fingerprint(content.ca)
    return {"cert": cert_fingerprint(content.cert), "ca": ca, "key": KEY_LOADED}


def credentials(content: IpsecContent, shared: set[str], keys: set[str]) -> dict[str, str]:
    """The credential attributes charon holds for `content`: `get-shared`'s ids, `get-keys`'."""
    wanted = _credentials(content)
    if "psk" in wanted:
        return wanted if shared_id(content.connection) in shared else {}
    assert content.cert is not None
    loaded = key_id(content.cert) in keys
    return {k: v for k, v in wanted.items() if k != "key" or loaded}


def ipsec_resource(content: IpsecContent) -> Resource:
    """The desired resource of `content`."""
    child = _child(content)
    attrs = {
        "local_addrs": list(content.tree["local_addrs"]),
        "remote_addrs": list(content.tree["remote_addrs"]),
        "local_ts": list(child["local_ts"]),
        "remote_ts": list(child["remote_ts"]),
        "config": config_digest(content.tree),
        **_credentials(content),
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
