"""WireGuard keys for a lab.

The lab needs every node's private key; the IR only carries public keys (or
None before `hercc keys init`). A KeySource gives both; `with_keys` writes its
public keys into the IR, so the rendered peers match the running interfaces.
GeneratedKeys makes throwaway keys with `wg genkey`; a source backed by the
real key store can replace it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Protocol

from hercc import ir
from hercc.lab.run import run


class KeySource(Protocol):
    def private_key_file(self, node: str) -> Path: ...

    def public_key(self, node: str) -> str: ...


class GeneratedKeys:
    """One fresh key pair per node, kept in `directory` (mode 0700)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._public: dict[str, str] = {}

    def _ensure(self, node: str) -> None:
        if node in self._public:
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = run(["wg", "genkey"], timeout=5).stdout.strip()
        path = self.directory / f"{node}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(private + "\n")
        self._public[node] = run(["wg", "pubkey"], input=private + "\n", timeout=5).stdout.strip()

    def private_key_file(self, node: str) -> Path:
        self._ensure(node)
        return self.directory / f"{node}.key"

    def public_key(self, node: str) -> str:
        self._ensure(node)
        return self._public[node]


def with_keys(model: ir.IR, keys: KeySource) -> ir.IR:
    """The IR with every node's and every peer's public key taken from `keys`.

    Keys already in the IR are replaced too: the lab can only run a node whose
    private key it holds.
    """
    nodes = tuple(
        dataclasses.replace(
            node,
            pubkey=keys.public_key(node.name),
            networks=tuple(
                dataclasses.replace(
                    m,
                    peers=tuple(
                        dataclasses.replace(p, pubkey=keys.public_key(p.node)) for p in m.peers
                    ),
                )
                for m in node.networks
            ),
        )
        for node in model.nodes
    )
    return dataclasses.replace(model, nodes=nodes)
