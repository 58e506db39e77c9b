"""What Hercules owns on a node that the kernel cannot mark: its network namespaces.

Interfaces carry an alias (`hercules:<node>`, see `owner_alias`); namespaces
have no such field, so the ones Hercules created are listed in
`<state_dir>/<node>.json`:

    {"version": 1, "node": "n1", "namespaces": ["hc-n1-a", "hc-n1-b"]}

Writes are atomic (a temporary file renamed over the old one). There is no
locking: one apply per node at a time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hercc.resources.model import OWNER_ALIAS, STATE_DIR
from hercc.state.errors import RegistryError
from hercc.sysio.files import write_atomic

__all__ = ["OwnedRegistry", "is_owner_alias", "owner_alias"]

FORMAT_VERSION = 1


def owner_alias(node: str) -> str:
    """The alias apply writes on every interface it creates for `node`."""
    return f"{OWNER_ALIAS}:{node}"


def is_owner_alias(alias: str | None, node: str) -> bool:
    """True for `hercules:<node>` (and a bare `hercules`); another node's alias is not ours."""
    return alias is not None and alias in (OWNER_ALIAS, owner_alias(node))


class OwnedRegistry:
    """The namespaces Hercules created on one node, persisted as JSON."""

    def __init__(self, node: str, state_dir: str | os.PathLike[str] = STATE_DIR) -> None:
        if not node or "/" in node or node.startswith("."):
            raise RegistryError(f"invalid node name {node!r} for a state file")
        self.node = node
        self.path = Path(state_dir) / f"{node}.json"

    def load(self) -> frozenset[str]:
        """The owned namespaces; empty when the file does not exist yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return frozenset()
        except OSError as exc:
            raise RegistryError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{self.path}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise RegistryError(f"{self.path}: not a version {FORMAT_VERSION} state file")
        names = data.get("namespaces")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RegistryError(f'{self.path}: "namespaces" must be a list of names')
        if data.get("node") != self.node:
            raise RegistryError(f"{self.path}: belongs to node {data.get('node')!r}")
        return frozenset(names)

    def save(self, namespaces: frozenset[str] | set[str]) -> None:
        data = {"version": FORMAT_VERSION, "node": self.node, "namespaces": sorted(namespaces)}
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, text, 0o600)
        except OSError as exc:
            raise RegistryError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def add(self, namespace: str) -> frozenset[str]:
        """Record a namespace as ours (after creating it); returns the new set."""
        names = set(self.load())
        if namespace not in names:
            names.add(namespace)
            self.save(names)
        return frozenset(names)

    def remove(self, namespace: str) -> frozenset[str]:
        """Forget a namespace (after deleting it); forgetting an unknown one is fine."""
        names = set(self.load())
        if namespace in names:
            names.discard(namespace)
            self.save(names)
        return frozenset(names)
