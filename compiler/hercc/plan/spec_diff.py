"""What a change of spec would do to each node: the plan from one IR's desired state to another's.

The desired state of a node (plan/desired.py) under OLD is the "live" side,
under NEW the desired side; `hercc diff` prints the plans between them.
"""

from __future__ import annotations

from hercc import ir
from hercc.plan.desired import KeyLookup, desired_state
from hercc.plan.diff import Plan, diff
from hercc.resources.model import State, state_of
from hercc.resources.naming import Naming


def _state(model: ir.IR, node: str, naming: Naming, keys: KeyLookup | None) -> State:
    if node not in {n.name for n in model.nodes}:
        return {}
    return state_of(desired_state(model, node, naming, keys))


def diff_models(
    old: ir.IR,
    new: ir.IR,
    nodes: list[str] | None = None,
    naming: Naming | None = None,
    keys: KeyLookup | None = None,
) -> list[tuple[str, Plan]]:
    """(node, plan) for the given nodes (default: every node of either IR), sorted by name.

    A node only in OLD loses everything; a node only in NEW gains everything.
    """
    naming = naming if naming is not None else Naming()
    if nodes is None:
        nodes = sorted({n.name for n in old.nodes} | {n.name for n in new.nodes})
    return [
        (node, diff(_state(new, node, naming, keys), _state(old, node, naming, keys)))
        for node in nodes
    ]
