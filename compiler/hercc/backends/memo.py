"""RenderMemo: what one render (of all nodes, or some) renders once and reuses, fresh for each.

Routing shares objects: every node of a mesh gets the very same Peer object
for a given peer, and every nat node of a plain network the very same peer
tuple. A 1,000-node mesh holds a million peer entries but a few thousand
distinct objects, so the backends render each object's text once per render.
Hashing a Peer's fields costs about as much as rendering it: entries are found
by identity. The memo belongs to one render, so renders in different threads
share nothing; the parts of one render share it, and a forked worker that
renders some of them extends its own copy (fork keeps every identity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from hercc import ir

T = TypeVar("T")


class IdentityMemo:
    """The text of objects, keyed by the network rendered for and the object's identity.

    Each entry keeps its object alive, so an id is never reused while the entry
    exists. Past `limit` entries the memo starts afresh: that bounds memory
    (some texts are megabytes), not correctness.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        # network -> (id -> text, id -> the object, kept alive)
        self._networks: dict[str, tuple[dict[int, str], dict[int, object]]] = {}

    def text(self, obj: T, network: str, render: Callable[[T], str]) -> str:
        """render(obj), called only the first time this object is seen for this network."""
        return self.texts((obj,), network, render)[0]

    def texts(self, objs: Sequence[T], network: str, render: Callable[[T], str]) -> list[str]:
        """text() of each object. It runs once per peer entry of the mesh: the lookups
        are C loops (map), and only the objects not seen yet take a Python loop."""
        texts = self._networks.setdefault(network, ({}, {}))[0]
        out: list[str | None] = list(map(texts.get, map(id, objs)))
        if None in out:
            for i, obj in enumerate(objs):
                if out[i] is None:
                    out[i] = self._add(obj, network, render(obj))
        return cast(list[str], out)

    def _add(self, obj: object, network: str, text: str) -> str:
        if self._size >= self._limit:
            self._networks.clear()
            self._size = 0
        texts, alive = self._networks.setdefault(network, ({}, {}))
        texts[id(obj)], alive[id(obj)] = text, obj
        self._size += 1
        return text


class RenderMemo:
    """What the backends of one render reuse: one IdentityMemo per kind of text, and indexes."""

    def __init__(self) -> None:
        # One peer's [Peer] section (wireguard and wg-quick share it): small, many.
        self.peer_blocks = IdentityMemo(1 << 17)
        # All [Peer] sections of a shared peer tuple: large, reused by the nodes that follow.
        self.peer_lists = IdentityMemo(8)
        # One peer's netplan YAML entry, node.json line and [WireGuardPeer] section; and
        # all of them for a shared peer tuple, as peer_lists.
        self.netplan_peers = IdentityMemo(1 << 16)
        self.netplan_lists = IdentityMemo(8)
        self.json_peers = IdentityMemo(1 << 16)
        self.json_lists = IdentityMemo(8)
        self.networkd_peers = IdentityMemo(1 << 16)
        self.networkd_lists = IdentityMemo(8)
        self._workloads: dict[str, list[str]] | None = None
        self._tunnels: dict[str, list[tuple[ir.Gateway, ir.Tunnel]]] | None = None

    def workloads_of(self, model: ir.IR, node: str) -> list[str]:
        """The names of the node's workloads, sorted; indexed once, as nodes render one by one."""
        if self._workloads is None:
            self._workloads = {}
            for w in model.workloads:
                self._workloads.setdefault(w.node, []).append(w.name)
            for names in self._workloads.values():
                names.sort()
        return self._workloads.get(node, [])

    def tunnels_of(self, model: ir.IR, node: str) -> list[tuple[ir.Gateway, ir.Tunnel]]:
        """The node's gateway tunnels, by gateway name (the IR's order); indexed once."""
        if self._tunnels is None:
            self._tunnels = {}
            for gw in model.gateways:
                for t in gw.tunnels:
                    self._tunnels.setdefault(t.node, []).append((gw, t))
        return self._tunnels.get(node, [])
