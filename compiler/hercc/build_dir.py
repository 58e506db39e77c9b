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

    Raises OperationError "PATH: not a hercc build directory (FILE: why)" when
    either is missing, not JSON or not of their shape, and names the version
    when ir.json is of another one.
    """
    data = _read_object(path, "ir.json")
    files = _read_object(path, MANIFEST).get("files")
    if not isinstance(files, dict):
        raise _not_a_build(path, MANIFEST, "no files object")
    version = data.get("ir_version")
    if not isinstance(version, int):
        raise _not_a_build(path, "ir.json", "no ir_version")
    if version != ir.IR_VERSION:
        raise OperationError(
            f"{path}/ir.json: ir_version {version}, this hercc reads {ir.IR_VERSION} "
            "(rebuild it with this hercc)"
        )
    try:
        topology = ir.from_data(data)
    except OperationError as exc:
        raise _not_a_build(path, "ir.json", str(exc)) from None
    return BuildDir(path, topology, files)


def _read_object(build_dir: str, name: str) -> dict[str, Any]:
    try:
        with open(os.path.join(build_dir, name), encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise _not_a_build(build_dir, name, exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise _not_a_build(build_dir, name, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _not_a_build(build_dir, name, "not a JSON object")
    return data


def _not_a_build(build_dir: str, name: str, why: str) -> OperationError:
    return OperationError(f"{build_dir}: not a hercc build directory ({name}: {why})")


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise OperationError(f"{path}: cannot read: {exc}") from None
