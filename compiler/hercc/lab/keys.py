"""WireGuard keys for a lab.

The lab needs every node's private key; the IR only carries public keys (or
None before `hercc keys init`). A KeySource gives both; `with_keys` writes its
public keys into the IR, so the rendered peers match the running interfaces.
GeneratedKeys makes throwaway keys with `wg genkey`, and preshared keys for
`psk on` in the layout of `hercc keys`; a source backed by the real key store
can replace it.

The routing pass copies node keys onto peers, so a compiled IR is best made
with the lab's keys from the start: see hercc.lab.spec.compile_for_lab.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from hercc import ir
from hercc.diagnostics import LabError
from hercc.keys import psk_for
from hercc.sysio.files import write_atomic
from hercc.sysio.process import run


class KeySource(Protocol):
    def private_key_file(self, node: str) -> Path: ...

    def public_key(self, node: str) -> str: ...

    def psk(self, network: str, a: str, b: str) -> str:
        """The preshared key of nodes a and b in `network`, made on first use."""
        ...


class GeneratedKeys:
    """One fresh key pair per node, written to `directory` (mode 0700) when asked for.

    Without a directory, the keys live in a private temporary one that
    `discard()` removes (a Lab discards it at teardown). Private keys are also
    kept in memory, so a discarded source can still serve another lab.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.owned = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="hercc-lab-keys-")) if directory is None else directory
        )
        self._private: dict[str, str] = {}
        self._public: dict[str, str] = {}

    def _ensure(self, node: str) -> None:
        if node in self._public:
            return
        private = run(["wg", "genkey"], timeout=5, error=LabError).stdout.strip()
        pubkey = run(["wg", "pubkey"], input=private + "\n", timeout=5, error=LabError)
        self._public[node] = pubkey.stdout.strip()
        self._private[node] = private

    def generate(self, nodes: Iterable[str]) -> dict[str, str]:
        """Key pairs for `nodes` (made once each); their public keys by node."""
        return {node: self.public_key(node) for node in nodes}

    def private_key_file(self, node: str) -> Path:
        self._ensure(node)
        path = self.directory / f"{node}.key"
        if not path.exists():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, self._private[node] + "\n", 0o600)
        return path

    def public_key(self, node: str) -> str:
        self._ensure(node)
        return self._public[node]

    def psk(self, network: str, a: str, b: str) -> str:
        """Made on first use, in the layout of `hercc keys` (<dir>/psk/<network>/<a>--<b>.psk)."""
        return psk_for(str(self.directory), network, a, b)

    def discard(self) -> None:
        """Remove the key files of an owned (temporary) directory. Idempotent."""
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


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
