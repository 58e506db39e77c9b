"""lab/moves.py: which namespaces an apply frees, and the order of the nodes' applies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hercc.diagnostics import LabError
from hercc.lab.moves import freed_namespaces, in_apply_order, moved_to
from hercc.plan.diff import Plan, diff
from hercc.resources.model import Resource, state_of
from hercc.state.registry import OwnedRegistry


@dataclass
class Planned:
    node: str
    plan: Plan


def _netns(*names: str) -> dict[str, Resource]:
    return state_of([Resource("netns", n) for n in names])


def _planned(node: str, before: tuple[str, ...], after: tuple[str, ...]) -> Planned:
    return Planned(node, diff(_netns(*after), _netns(*before)))


def test_a_namespace_a_node_owns_and_no_longer_wants_is_freed(tmp_path: Path) -> None:
    OwnedRegistry("a", tmp_path).save({"p-x-a-shop", "p-w-web"})
    OwnedRegistry("b", tmp_path).save({"p-x-b-shop"})
    OwnedRegistry("gone", tmp_path).save({"p-x-gone-shop", "p-w-db"})
    desired = {"a": _netns("p-x-a-shop"), "b": _netns("p-x-b-shop", "p-w-web")}
    freed = freed_namespaces(["a", "b", "gone"], desired, tmp_path)
    assert freed == {"p-w-web", "p-x-gone-shop", "p-w-db"}


def test_the_giving_node_is_applied_before_the_taking_one() -> None:
    taker = _planned("a", ("p-x-a",), ("p-x-a", "p-w-web"))
    giver = _planned("b", ("p-x-b", "p-w-web"), ("p-x-b",))
    other = _planned("c", ("p-x-c",), ("p-x-c", "p-w-new"))
    assert moved_to([taker, giver, other]) == {"p-w-web": ("b", "a")}
    assert [p.node for p in in_apply_order([taker, giver, other])] == ["b", "a", "c"]
    assert [p.node for p in in_apply_order([other, giver, taker])] == ["c", "b", "a"]


def test_two_workloads_swapping_nodes_need_two_applies() -> None:
    a = _planned("a", ("p-w-one",), ("p-w-two",))
    b = _planned("b", ("p-w-two",), ("p-w-one",))
    with pytest.raises(LabError, match="workloads swap nodes in one apply"):
        in_apply_order([a, b])
