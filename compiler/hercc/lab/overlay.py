"""`hercc lab plan|apply`: every lab node planned and applied like a real node.

For each node of a running lab, `plan_lab` computes the node's desired state
from a spec (plan/desired.py, compiled with the lab's keys), reads the live
overlay from the lab's namespaces with the reader `hercc plan` uses
(cli_apply.read_live over hercc.state), and diffs them (plan/diff.py).
`apply_lab` carries every node's plan out with `hercc apply`'s executor
(plan/executor.SystemExecutor): the node's underlay namespace is its
--underlay-netns, the lab's STATE_DIR/<name>/nodes its --state-dir, the lab's
key files its keys. The lab's names are a Naming per node (hercc.lab.naming).

The underlay (nodes, their kinds and addresses, NAT routers) is fixed when
the lab comes up: a spec that adds or removes a node or moves one on the
underlay is refused (re-create the lab). Networks, ports, peers, addresses
and workloads can change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hercc import ir
from hercc.cli_apply import CanonicalKeys, conflicts, read_live
from hercc.lab import topology
from hercc.lab.naming import LabKeys, LabNaming, lab_naming
from hercc.lab.persistent import (
    LabState,
    node_names,
    rerecord,
    save_state,
    underlay_signature,
)
from hercc.lab.run import LabError
from hercc.plan.apply import ApplyFailed, Step, apply_steps, steps_of
from hercc.plan.desired import desired_state
from hercc.plan.diff import Plan, diff
from hercc.plan.model import State, state_of

RECREATE = "the lab's underlay is fixed at `up`: re-create the lab (`hercc lab down`, `lab up`)"


@dataclass
class NodePlan:
    node: str
    naming: LabNaming
    underlay_ns: str
    plan: Plan
    desired: State
    live: State


@dataclass
class LabPlan:
    state: LabState
    spec: str
    model: ir.IR
    topology: topology.Plan
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


@dataclass(frozen=True)
class _Live:
    netlink: Any
    wireguard: Any
    reader: Any


def _live() -> _Live:
    from hercc.state import ProcSysctl, PyrouteNetlink, StateReader, default_driver

    netlink = PyrouteNetlink()
    wg = default_driver()
    return _Live(netlink, wg, StateReader(netlink, wg, ProcSysctl()))


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
    from hercc.state.registry import OwnedRegistry

    model, keys = compile_for_running_lab(state, spec, sources)
    names = {(i.node, i.network): i.name for i in state.interfaces}
    topo = topology.plan(model, state.prefix, names)
    moved = [
        f"{new[0]} ({' '.join(old[1:])} -> {' '.join(new[1:])})"
        for old, new in zip(state.underlay, underlay_signature(topo), strict=True)
        if old != new
    ]
    if moved:
        raise LabError(f"{spec} moves {', '.join(moved)} on the underlay; {RECREATE}")
    live_io = _live()
    lookup = CanonicalKeys(keys)
    out: list[NodePlan] = []
    for node in node_names(state):
        naming = lab_naming(
            state.prefix, node, {m.network: m.wg_if for m in topo.members if m.node == node}
        )
        desired = state_of(desired_state(model, node, naming, lookup))
        registry = OwnedRegistry(node, state.apply_dir)
        live, foreign = read_live(
            node, desired, registry.load(), live_io.reader, live_io.netlink, naming.workload_ifname
        )
        plan = diff(desired, live)
        problems = conflicts(plan, foreign)
        if problems:
            raise LabError(f"node {node}: refusing to plan: " + "; ".join(problems))
        out.append(NodePlan(node, naming, topo.host(node).ns, plan, desired, live))
    return LabPlan(state, spec, model, topo, keys, out)


def apply_lab(
    planned: LabPlan,
    progress: Callable[[str, Step], None] | None = None,
) -> list[str]:
    """Apply every node's plan, node by node; the nodes changed. The lab's record follows.

    A node whose apply fails is rolled back (hercc.plan.apply); the nodes
    before it keep their change. LabError names both.
    """
    from hercc.plan.executor import SystemExecutor
    from hercc.state.registry import OwnedRegistry

    state = planned.state
    live_io = _live()
    lookup = CanonicalKeys(planned.keys)
    done: list[str] = []
    try:
        for n in planned.nodes:
            if n.plan.no_changes:
                continue
            executor = SystemExecutor(
                n.node,
                n.naming,
                lookup,
                live_io.wireguard,
                OwnedRegistry(n.node, state.apply_dir),
                n.underlay_ns,
                state_dir=state.apply_dir,
            )

            def step_done(step: Step, node: str = n.node) -> None:
                if progress is not None:
                    progress(node, step)

            try:
                apply_steps(steps_of(n.plan), executor, step_done)
            except ApplyFailed as exc:
                applied = f"; applied before it: {', '.join(done)}" if done else ""
                raise LabError(
                    f"node {n.node}: apply failed and was rolled back: {exc}{applied}"
                ) from None
            done.append(n.node)
    finally:
        if done:
            rerecord(state, planned.topology, planned.spec)
            save_state(state)
    return done
