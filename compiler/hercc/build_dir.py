"""A build directory read back: the IR it was built from and the files its manifest lists.

`hercc build` writes ir.json (the topology), manifest.json (every file with
its sha256 and size) and, with the node-json backend, nodes/<node>/node.json
(among others, each node's peers, which ir.json leaves out). `hercc summary`
needs the first two; `hercc diff` needs the IR with its peers.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.writer import MANIFEST


@dataclass(frozen=True)
class BuildDir:
    path: str
    topology: ir.IR  # ir.json: every membership's peers are empty
    files: dict[str, Any]  # manifest.json: relative path -> {"sha256", "size"}

    def with_peers(self) -> ir.IR:
        """The whole IR: the topology plus every node's peers, from nodes/<node>/node.json."""
        nodes = []
        for node in self.topology.nodes:
            path = os.path.join(self.path, "nodes", node.name, "node.json")
            if not os.path.exists(path):
                raise OperationError(f"{path}: missing (build with the node_json backend)")
            per_net = _read_json(path).get("networks", {})
            members = []
            for m in node.networks:
                peers = per_net.get(m.network, {}).get("peers", [])
                decoded = ir.peers_from_data(peers, f"{path}: {m.network}.peers")
                members.append(dataclasses.replace(m, peers=decoded))
            nodes.append(dataclasses.replace(node, networks=tuple(members)))
        return dataclasses.replace(self.topology, nodes=tuple(nodes))


def read_build(path: str) -> BuildDir:
    """ir.json and manifest.json of the build directory `path`.

    Raises OperationError "PATH: not a hercc build directory (...)" when either
    is missing or not JSON, and names the place where ir.json is not an IR.
    """
    try:
        with open(os.path.join(path, "ir.json"), encoding="utf-8") as fh:
            data = json.load(fh)
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as fh:
            files = json.load(fh)["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OperationError(f"{path}: not a hercc build directory ({exc})") from None
    try:
        topology = ir.from_data(data)
    except OperationError as exc:
        raise OperationError(f"{path}/ir.json: {exc}") from None
    return BuildDir(path, topology, files)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise OperationError(f"{path}: cannot read: {exc}") from None
