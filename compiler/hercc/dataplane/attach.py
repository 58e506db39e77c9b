"""Where a node's programs are attached and pinned, and the digest that names what was loaded.

Shared by the desired state (plan/desired_dataplane.py), the live reader
(state/bpf.py) and the executor (plan/executor/bpf_attach.py), so the three
name things alike.

* Hooks, as they appear in a `bpf` resource's id: HOOK_TC ("tc-ingress": a
  cls_bpf filter, direct action, on the clsact qdisc's ingress) and
  HOOK_XDP ("xdp", native or generic mode: its `mode` attribute). Native XDP
  on a veth needs its other end's TX checksum offload off and GRO on
  (NATIVE_PEER_OFFLOADS, as attributes; VETH_DEFAULT_OFFLOADS is what a
  delete puts back).
* Pins: the programs and maps of one namespace and hook live on the bpffs
  under `<BPFFS>/hercules/<node>/<NS>/<hook>-<digest>/`: each entry point as
  `prog_<entry>`, each map as `map_<name>` (bpffs refuses dots). Every attachment of that
  namespace and hook uses the programs of that one object, so they share its
  maps (routes4, routes6, flows, counters), which a flow exporter opens by
  path. They outlive hercc: a program stays attached after its loader exits.
* The digest: of the program's C text with the generated header expanded
  (a changed map size or feature is a changed text) and of the namespace's
  routes. What is pinned under a digest is what that text compiled to, with
  those routes filled in, so the live reader reads the digest back from the
  directory's name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "BPFFS",
    "ETHTOOL_FEATURES",
    "ETHTOOL_JSON_FEATURES",
    "HOOK_TC",
    "HOOK_XDP",
    "MAP_PREFIX",
    "NATIVE_PEER_OFFLOADS",
    "PROG_PREFIX",
    "VETH_DEFAULT_OFFLOADS",
    "digest",
    "hook_id",
    "node_root",
    "object_name",
    "parse_object_name",
    "pin_dir",
    "pin_root",
    "program_hook",
]

BPFFS = "/sys/fs/bpf"
HOOK_TC = "tc-ingress"
HOOK_XDP = "xdp"
PROG_PREFIX = "prog_"
MAP_PREFIX = "map_"
_HOOK_IDS = {"tc": HOOK_TC, "xdp": HOOK_XDP}
# attribute -> value, and each attribute's ethtool feature (ethtool -K NAME on|off)
NATIVE_PEER_OFFLOADS = {"peer_tx_checksum": "off", "peer_gro": "on"}
VETH_DEFAULT_OFFLOADS = {"peer_tx_checksum": "on", "peer_gro": "off"}
ETHTOOL_FEATURES = {"peer_tx_checksum": "tx", "peer_gro": "gro"}
ETHTOOL_JSON_FEATURES = {
    "peer_tx_checksum": "tx-checksumming",
    "peer_gro": "generic-receive-offload",
}
_DIGEST_LEN = 16


def hook_id(hook: str) -> str:
    """maps.json's hook ("tc" or "xdp") as a resource id's last part."""
    return _HOOK_IDS[hook]


def program_hook(hook_id_: str) -> str:
    """A resource id's hook back as the program's hook ("tc" or "xdp")."""
    return next(h for h, i in _HOOK_IDS.items() if i == hook_id_)


def digest(text: str, routes: Sequence[Mapping[str, Any]]) -> str:
    """The digest of a program's expanded C text and the routes filled into its maps."""
    h = hashlib.sha256(text.encode())
    h.update(json.dumps(list(routes), sort_keys=True).encode())
    return h.hexdigest()[:_DIGEST_LEN]


def node_root(node: str, bpffs: str = BPFFS) -> PurePosixPath:
    """The directory of all a node's pinned objects (a directory per namespace)."""
    return PurePosixPath(bpffs) / "hercules" / node


def pin_root(node: str, ns: str, bpffs: str = BPFFS) -> PurePosixPath:
    """The directory of a node's pinned objects in namespace `ns`."""
    return node_root(node, bpffs) / ns


def object_name(hook: str, digest_: str) -> str:
    return f"{hook}-{digest_}"


def parse_object_name(name: str) -> tuple[str, str] | None:
    """(hook, digest) of a pinned object's directory name; None when it is no such name."""
    hook, _, dig = name.partition("-")
    if hook not in _HOOK_IDS or len(dig) != _DIGEST_LEN:
        return None
    return hook, dig


def pin_dir(node: str, ns: str, hook: str, digest_: str, bpffs: str = BPFFS) -> PurePosixPath:
    return pin_root(node, ns, bpffs) / object_name(hook, digest_)
