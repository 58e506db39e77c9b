"""The plan: what turns a node's live state into its desired state.

`diff(desired, live)` compares two States (address -> Resource). Only the
attributes of the desired resource are compared (a live reader may report
more), never labels (resources/model.py: metadata, not state); the live state holds
only what Hercules owns, so every live resource that is not desired is
deleted.

A change of an attribute in `forces_new` replaces the resource ("-/+"), and a
replaced resource takes every resource under it (by `parent`) along: the
kernel drops an interface's addresses and routes with it, so they are
replaced too even when they themselves did not change.

Order, the one apply follows: deletes first, children before parents
(resources.model.apply_rank backwards: kind order, then XDP after TC; then
address backwards); then creates, replaces and updates, parents before
children (apply_rank, then address).
A replace is applied as a delete and a create at its place in the second part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hercc.resources.action import Action
from hercc.resources.model import Resource, State, apply_rank

_MISSING = object()


def _norm(value: Any) -> Any:
    """Tuples and lists compare equal (a state that went through JSON has lists only)."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _norm(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Change:
    """One resource's change. `changed` lists (attribute, old, new) for update and replace;
    `forces` the attributes that force a replace, or `replaced_with` the ancestor whose
    replacement takes this resource along. `as_written` (attribute, text): how the spec
    wrote a value that is compared in another form (a host name endpoint, resolved)."""

    action: Action
    address: str
    before: Resource | None
    after: Resource | None
    changed: tuple[tuple[str, Any, Any], ...] = ()
    forces: tuple[str, ...] = ()
    replaced_with: str | None = None
    as_written: tuple[tuple[str, str], ...] = ()

    @property
    def resource(self) -> Resource:
        """The resource concerned: after, or before for a delete."""
        r = self.after if self.after is not None else self.before
        assert r is not None
        return r

    @property
    def sensitive(self) -> frozenset[str]:
        s: frozenset[str] = frozenset()
        for r in (self.before, self.after):
            if r is not None:
                s |= r.sensitive
        return s


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    @property
    def add(self) -> int:
        return sum(c.action in (Action.CREATE, Action.REPLACE) for c in self.changes)

    @property
    def change(self) -> int:
        return sum(c.action is Action.UPDATE for c in self.changes)

    @property
    def destroy(self) -> int:
        return sum(c.action in (Action.DELETE, Action.REPLACE) for c in self.changes)

    @property
    def no_changes(self) -> bool:
        return not self.changes

    def counts(self) -> tuple[int, int, int]:
        return self.add, self.change, self.destroy


def _forward_key(r: Resource) -> tuple[int, int, str]:
    return (*apply_rank(r.kind, r.address), r.address)


def changed_attrs(desired: Resource, live: Resource) -> list[tuple[str, Any, Any]]:
    """(name, live value, desired value) of every desired attribute that differs."""
    out = []
    for name in sorted(desired.attrs):
        new = desired.attrs[name]
        old = live.attrs.get(name, _MISSING)
        if old is _MISSING or _norm(old) != _norm(new):
            out.append((name, None if old is _MISSING else old, new))
    return out


def _descendants(state: State, roots: set[str]) -> set[str]:
    """Addresses of every resource in `state` under one of `roots` (by parent chain)."""
    children: dict[str, list[str]] = {}
    for address, r in state.items():
        if r.parent is not None:
            children.setdefault(r.parent, []).append(address)
    found: set[str] = set()
    todo = sorted(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _root_of(address: str, state: State, replaced: set[str]) -> str | None:
    """The nearest ancestor of `address` that is replaced on its own account."""
    seen: set[str] = set()
    parent = state[address].parent
    while parent is not None and parent not in seen:
        if parent in replaced:
            return parent
        seen.add(parent)
        node = state.get(parent)
        parent = node.parent if node is not None else None
    return None


def diff(desired: State, live: State) -> Plan:
    deletes: list[Change] = []
    others: dict[str, Change] = {}
    for address, r in live.items():
        if address not in desired:
            deletes.append(Change(Action.DELETE, address, r, None))
    for address, want in desired.items():
        have = live.get(address)
        if have is None:
            others[address] = Change(Action.CREATE, address, None, want)
            continue
        changed = changed_attrs(want, have)
        if not changed:
            continue
        forcing = want.forces_new | have.forces_new
        forces = tuple(name for name, _, _ in changed if name in forcing)
        action = Action.REPLACE if forces else Action.UPDATE
        others[address] = Change(action, address, have, want, tuple(changed), forces)
    replaced = {a for a, c in others.items() if c.action is Action.REPLACE}
    for address in sorted(_descendants(desired, replaced)):
        current = others.get(address)
        if address not in live or (current is not None and current.action is Action.REPLACE):
            continue
        others[address] = Change(
            Action.REPLACE,
            address,
            live[address],
            desired[address],
            current.changed if current is not None else (),
            (),
            _root_of(address, desired, replaced),
        )
    deletes.sort(key=lambda c: _forward_key(c.resource), reverse=True)
    rest = sorted(others.values(), key=lambda c: _forward_key(c.resource))
    return Plan(tuple(deletes + rest))
