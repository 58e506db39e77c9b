"""`hercc lab plan|apply`: every lab node planned and applied like a real node.

For each node of a running lab, `plan_lab` computes the node's desired state
from a spec (plan/desired.py, compiled with the lab's keys), reads the live
overlay from the lab's namespaces with the reader `hercc plan` uses
(plan/node_service.py over hercc.state), and diffs them (plan/diff.py).
`apply_lab` carries every node's plan out with `hercc apply`'s executor
(plan/executor.SystemExecutor): the node's underlay namespace is its
--underlay-netns, the lab's STATE_DIR/<name>/nodes its --state-dir, the lab's
key files its keys. The lab's names are a Naming per node (hercc.lab.naming);
the per-node plan and apply are hercc.lab.nodes', the very code that brought
the lab's overlay up (`lab up`).

The underlay (nodes, their kinds and addresses, NAT routers) is fixed when
the lab comes up: a spec that adds or removes a node or moves one on the
underlay is refused (re-create the lab). Networks, ports, peers, addresses
and workloads can change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab import nodes, topology
from hercc.lab.naming import LabKeys, LabNaming
from hercc.lab.persistent.statefile import (
    LabState,
    node_names,
    rerecord,
    save_state,
    underlay_signature,
)
from hercc.plan.apply import Step
from hercc.plan.diff import Plan
from hercc.plan.node_service import live_system
from hercc.resources.model import State

RECREATE = "the lab's underlay is fixed at `up`: re-create the lab (`hercc lab down`, `lab up`)"


@dataclass
class NodePlan:
    lab_node: nodes.LabNode
    plan: Plan
    live: State

    @property
    def node(self) -> str:
        return self.lab_node.node

    @property
    def naming(self) -> LabNaming:
        return self.lab_node.naming

    @property
    def desired(self) -> State:
        return self.lab_node.desired


@dataclass
class LabPlan:
    state: LabState
    spec: str
    model: ir.IR
    topology: topology.Topology
    keys: LabKeys
    nodes: list[NodePlan]

    def counts(self) -> tuple[int, int, int]:
        add = sum(n.plan.add for n in self.nodes)
        change = sum(n.plan.change for n in self.nodes)
        destroy = sum(n.plan.destroy for n in self.nodes)
        return add, change, destroy

    @property
    def no_changes(self) -> bool:
        return all(n.plan.no_changes for n in self.nodes)


def compile_for_running_lab(
    state: LabState, spec: str, sources: dict[str, str] | None = None
) -> tuple[ir.IR, LabKeys]:
    """`spec` compiled with the public keys of the lab's nodes; the lab's node set, or LabError."""
    from hercc.pipeline import compile_spec

    plain = compile_spec(spec, sources)
    have = node_names(state)
    want = [n.name for n in plain.ir.nodes]
    added = sorted(set(want) - set(have))
    removed = sorted(set(have) - set(want))
    if added or removed:
        what = [f"adds node{'s' if len(added) > 1 else ''} {', '.join(added)}"] if added else []
        if removed:
            what.append(f"removes node{'s' if len(removed) > 1 else ''} {', '.join(removed)}")
        raise LabError(f"{spec} {' and '.join(what)} of lab {state.name!r}; {RECREATE}")
    keys = LabKeys(state.keys_dir)
    pubkeys = keys.public_keys(have)
    model = compile_spec(spec, pubkeys=pubkeys).ir
    pinned = sorted(n.name for n in model.nodes if n.pubkey != pubkeys[n.name])
    if pinned:
        raise LabError(f"nodes with a pinned pubkey cannot run in the lab: {', '.join(pinned)}")
    return model, keys


def plan_lab(state: LabState, spec: str, sources: dict[str, str] | None = None) -> LabPlan:
    """Every node's plan from its live overlay to `spec`. Reads, never changes."""
    if state.status != "up":
        raise LabError(f"lab {state.name!r} is not up (its `up` did not finish)")
    if not state.apply_dir or not state.underlay:
        raise LabError(f"lab {state.name!r} was made by an older hercc: re-create it")
    model, keys = compile_for_running_lab(state, spec, sources)
    names = {(i.node, i.network): i.name for i in state.interfaces}
    topo = topology.topology_of(model, state.prefix, names)
    moved = [
        f"{new[0]} ({' '.join(old[1:])} -> {' '.join(new[1:])})"
        for old, new in zip(state.underlay, underlay_signature(topo), strict=True)
        if old != new
    ]
    if moved:
        raise LabError(f"{spec} moves {', '.join(moved)} on the underlay; {RECREATE}")
    io = live_system()
    out: list[NodePlan] = []
    for n in nodes.lab_nodes(model, topo, keys, node_names(state)):
        plan, live = nodes.plan_node(n, n.desired, state.apply_dir, io)
        out.append(NodePlan(n, plan, live))
    return LabPlan(state, spec, model, topo, keys, out)


def apply_lab(
    planned: LabPlan,
    progress: Callable[[str, Step], None] | None = None,
) -> list[str]:
    """Apply every node's plan, node by node; the nodes changed. The lab's record follows.

    A node whose apply fails is rolled back (hercc.plan.apply); the nodes
    before it keep their change. LabError names both.
    """
    state = planned.state
    io = live_system()
    done: list[str] = []
    try:
        for n in planned.nodes:
            if n.plan.no_changes:
                continue

            def step_done(step: Step, node: str = n.node) -> None:
                if progress is not None:
                    progress(node, step)

            try:
                nodes.apply_node(n.lab_node, n.plan, state.apply_dir, io, progress=step_done)
            except LabError as exc:
                applied = f"; applied before it: {', '.join(done)}" if done else ""
                raise LabError(f"{exc}{applied}") from None
            done.append(n.node)
    finally:
        if done:
            rerecord(state, planned.topology, planned.spec)
            save_state(state)
    return done
