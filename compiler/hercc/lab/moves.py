"""Workloads that move between the nodes of a running lab (`hercc lab plan|apply`).

A workload's namespace has one name on every node (`<p>-w-<workload>`), and
a lab runs every node on one machine. So when the spec moves a workload
from node A to node B, B's plan creates a name that A still owns, and A's
plan deletes it. Two things make that one apply:

* `freed_namespaces`: the names some node of the lab owns (its registry)
  and will no longer have (its new desired state, or none for a node that
  goes). B's plan is told of them, so they are no conflict (plan_node's
  `freed`); any other name that is not B's still is.
* `in_apply_order`: the node that lets a namespace go is applied before the
  node that takes it. Two workloads swapping nodes in one apply would need
  each first: a LabError asks for two applies instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from hercc.diagnostics import LabError
from hercc.plan.diff import Plan
from hercc.resources.action import Action
from hercc.resources.model import State
from hercc.state.registry import OwnedRegistry


class NodeWithPlan(Protocol):
    @property
    def node(self) -> str: ...

    plan: Plan


P = TypeVar("P", bound=NodeWithPlan)


def freed_namespaces(
    running: Iterable[str], desired: Mapping[str, State], state_dir: str | Path
) -> frozenset[str]:
    """The namespaces the nodes `running` own now and their `desired` state drops."""
    out: set[str] = set()
    for node in running:
        wanted = {r.id for r in desired.get(node, {}).values() if r.kind == "netns"}
        out |= OwnedRegistry(node, state_dir).load() - wanted
    return frozenset(out)


def _netns(plan: Plan, action: Action) -> set[str]:
    return {
        c.resource.id for c in plan.changes if c.resource.kind == "netns" and c.action is action
    }


def moved_to(plans: Sequence[NodeWithPlan]) -> dict[str, tuple[str, str]]:
    """namespace -> (the node that deletes it, the node that creates it), for every move."""
    gives = {ns: p.node for p in plans for ns in _netns(p.plan, Action.DELETE)}
    return {
        ns: (gives[ns], p.node)
        for p in plans
        for ns in sorted(_netns(p.plan, Action.CREATE))
        if ns in gives and gives[ns] != p.node
    }


def in_apply_order(plans: Sequence[P]) -> list[P]:
    """`plans` in their order, but every giving node before the node that takes from it."""
    after: dict[str, set[str]] = {p.node: set() for p in plans}
    for giver, taker in moved_to(plans).values():
        after[taker].add(giver)
    out: list[P] = []
    placed: set[str] = set()
    pending = list(plans)
    while pending:
        ready = next((p for p in pending if after[p.node] <= placed), None)
        if ready is None:
            stuck = ", ".join(sorted(p.node for p in pending))
            raise LabError(
                f"workloads swap nodes in one apply ({stuck} each take a namespace from "
                "another): move one of them, apply, then the other"
            )
        pending.remove(ready)
        placed.add(ready.node)
        out.append(ready)
    return out
