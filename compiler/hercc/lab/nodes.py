"""A lab node's overlay, planned and applied with the code of `hercc plan|apply`.

For each node of a lab, `lab_nodes` gives its desired state (plan/desired.py,
with the node's LabNaming and the lab's keys); `plan_node` reads its live
state the way `hercc plan` reads a node (cli_apply.read_live over
hercc.state; in a new lab, empty) and diffs the two (plan/diff.py), refusing
to create a name that exists and is not the node's; `apply_node` carries the
plan out with `hercc apply`'s executor (plan/executor.SystemExecutor):
wireguard-go runs in the node's underlay namespace (its --underlay-netns),
the lab's node directory is its --state-dir (the registry of the namespaces
the node owns, `<node>.json`, its wireguard-go PIDs, `<node>.wireguard-go.json`,
and their logs, `<node>.<interface>.log`).

`withheld` is a desired state without the peers' endpoints and keepalives:
`lab up` applies it first on every node, so that every port is open and
every peer known everywhere before anyone dials (see hercc.lab.harness).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc import ir
from hercc.cli_apply import conflicts, read_live
from hercc.diagnostics import LabError
from hercc.lab import topology
from hercc.lab.naming import LabNaming, lab_naming
from hercc.plan.apply import ApplyFailed, Restore, Step, apply_steps, steps_of
from hercc.plan.desired import KeyLookup, desired_state
from hercc.plan.diff import Plan, diff
from hercc.resources.ids import PeerId
from hercc.resources.model import Resource, State, state_of
from hercc.sysio.procfs import read_pid_file

# called with every namespace the executor creates, before anything goes into it
NetnsHook = Callable[[str], None]


@dataclass(frozen=True)
class LabNode:
    node: str
    naming: LabNaming
    underlay_ns: str
    desired: State


@dataclass(frozen=True)
class Live:
    """The readers and the WireGuard driver of `hercc plan|apply`."""

    wireguard: Any
    reader: Any


def live_io() -> Live:
    from hercc.state import ProcSysctl, PyrouteNetlink, StateReader, default_driver

    netlink = PyrouteNetlink()
    wg = default_driver()
    return Live(wg, StateReader(netlink, wg, ProcSysctl()))


def lab_nodes(
    model: ir.IR, topo: topology.Topology, keys: KeyLookup, nodes: Iterable[str] | None = None
) -> list[LabNode]:
    """Every node's (or those of `nodes`) names and desired state in the lab `topo` of `model`."""
    out = []
    for node in nodes if nodes is not None else [n.name for n in model.nodes]:
        naming = lab_naming(
            topo.prefix, node, {m.network: m.wg_if for m in topo.members if m.node == node}
        )
        desired = state_of(desired_state(model, node, naming, keys))
        out.append(LabNode(node, naming, topo.host(node).ns, desired))
    return out


def withheld(desired: State) -> State:
    """`desired` with every peer's endpoint and keepalive left out: nobody dials."""
    out = dict(desired)
    for address, r in desired.items():
        if r.kind == "peer":
            attrs = {k: v for k, v in r.attrs.items() if k != "endpoint"}
            attrs["keepalive"] = None
            out[address] = dataclasses.replace(r, attrs=attrs)
    return out


def dialled(desired: State) -> dict[tuple[str, str], set[str]]:
    """(namespace, interface) -> the public keys of the peers it dials by itself.

    A peer with an endpoint and a keepalive: the handshake `lab up` waits for.
    """
    out: dict[tuple[str, str], set[str]] = {}
    for r in desired.values():
        if r.kind == "peer" and r.attrs.get("endpoint") and r.attrs.get("keepalive"):
            ns, ifname, pubkey = r.id_as(PeerId)
            out.setdefault((ns, ifname), set()).add(pubkey)
    return out


def plan_node(n: LabNode, desired: State, state_dir: str | Path, io: Live) -> tuple[Plan, State]:
    """The plan from the node's live overlay to `desired`, and that live state. Reads only."""
    from hercc.state.registry import OwnedRegistry

    registry = OwnedRegistry(n.node, state_dir)
    live, foreign = read_live(
        n.node, desired, registry.load(), io.reader, n.naming.workload_ifname
    )
    plan = diff(desired, live)
    problems = conflicts(plan, foreign)
    if problems:
        raise LabError(f"node {n.node}: refusing to plan: " + "; ".join(problems))
    return plan, live


class _Watched:
    """An executor that calls `on_netns` for each namespace it has created."""

    def __init__(self, inner: Any, on_netns: NetnsHook) -> None:
        self.inner = inner
        self.on_netns = on_netns

    def create(self, resource: Resource) -> None:
        self.inner.create(resource)
        if resource.kind == "netns":
            self.on_netns(resource.id)

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        self.inner.update(before, after, changed)

    def delete(self, resource: Resource) -> Restore:
        restore: Restore = self.inner.delete(resource)
        return restore


def apply_node(
    n: LabNode,
    plan: Plan,
    keys: KeyLookup,
    state_dir: str | Path,
    io: Live,
    *,
    on_netns: NetnsHook | None = None,
    progress: Callable[[Step], None] | None = None,
) -> None:
    """Carry `plan` out on node `n` with `hercc apply`'s executor; LabError if it fails.

    A failed apply is rolled back (hercc.plan.apply): the node is as it was.
    """
    from hercc.plan.executor import SystemExecutor
    from hercc.state.registry import OwnedRegistry

    executor: Any = SystemExecutor(
        n.node,
        n.naming,
        keys,
        io.wireguard,
        OwnedRegistry(n.node, state_dir),
        n.underlay_ns,
        state_dir=state_dir,
    )
    if on_netns is not None:
        executor = _Watched(executor, on_netns)
    try:
        apply_steps(steps_of(plan), executor, progress)
    except ApplyFailed as exc:
        raise LabError(f"node {n.node}: apply failed and was rolled back: {exc}") from None


def recorded_pids(state_dir: str | Path, node: str) -> dict[str, int]:
    """The wireguard-go PIDs the executor recorded for `node` (interface -> PID)."""
    from hercc.plan.executor import wireguard_go_pid_file

    return read_pid_file(wireguard_go_pid_file(state_dir, node))


def log_file(state_dir: str | Path, node: str, ifname: str) -> Path:
    """The executor's log of the wireguard-go of `ifname` on `node`."""
    return Path(state_dir) / f"{node}.{ifname}.log"
