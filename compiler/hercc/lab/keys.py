"""WireGuard keys for a lab.

The lab needs every node's private key; the IR only carries public keys (or
None before `hercc keys init`). A KeySource gives both; `with_keys` writes its
public keys into the IR, so the rendered peers match the running interfaces.
GeneratedKeys makes throwaway keys with `wg genkey`, and preshared keys for
`psk on` in the layout of `hercc keys`; a source backed by the real key store
can replace it. A gateway's key is asked for as its owner name in `hercc
keys` (`gateway:<name>`, gateway_owner) and lives where `hercc keys` keeps
it (<dir>/gateways/<name>.key), apart from a node of the same name.

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
from hercc.keys import GATEWAY_PREFIX, psk_for
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
        """The key file of a node, or of a gateway (`gateway:<name>`)."""
        self._ensure(node)
        path = key_path(self.directory, node)
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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


def gateway_owner(gateway: str) -> str:
    """A gateway's name as a key owner (as `hercc keys` names it in public.json)."""
    return GATEWAY_PREFIX + gateway


def key_path(directory: Path, owner: str) -> Path:
    """Where a node's (<dir>/<node>.key) or a gateway's (<dir>/gateways/<name>.key) key lives."""
    if owner.startswith(GATEWAY_PREFIX):
        return directory / "gateways" / f"{owner[len(GATEWAY_PREFIX) :]}.key"
    return directory / f"{owner}.key"


def gateway_public_keys(directory: Path, gateways: Iterable[str]) -> dict[str, str]:
    """The public keys of the gateways whose key files are in `directory`, by owner name."""
    out = {}
    for gw in gateways:
        path = key_path(directory, gateway_owner(gw))
        try:
            private = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise LabError(f"{path}: {exc.strerror or exc}") from None
        done = run(["wg", "pubkey"], input=private + "\n", timeout=5, error=LabError)
        out[gateway_owner(gw)] = done.stdout.strip()
    return out


def with_keys(model: ir.IR, keys: KeySource) -> ir.IR:
    """The IR with every node's, peer's, gateway's and tunnel's public key taken from `keys`.

    Keys already in the IR are replaced too: the lab can only run a node (or
    a gateway) whose private key it holds.
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
    gateways = tuple(
        dataclasses.replace(
            gw,
            pubkey=keys.public_key(gateway_owner(gw.name)),
            tunnels=tuple(
                dataclasses.replace(t, pubkey=keys.public_key(t.node)) for t in gw.tunnels
            ),
        )
        for gw in model.gateways
    )
    return dataclasses.replace(model, nodes=nodes, gateways=gateways)
