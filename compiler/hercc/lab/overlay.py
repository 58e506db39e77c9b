"""`hercc lab plan|apply`: every lab node planned and applied like a real node.

For each node of a running lab, `plan_lab` computes the node's desired state
from a spec (plan/desired.py, compiled with the lab's keys), reads the live
overlay from the lab's namespaces with the reader `hercc plan` uses
(plan/node_service.py over hercc.state), and diffs them (plan/diff.py).
`apply_lab` carries every node's plan out with `hercc apply`'s executor
(plan/executor.SystemExecutor): the node's underlay namespace is its
--underlay-netns, the lab's <name>/nodes its --state-dir, the lab's key
files its keys. The lab's names are a Naming per node (hercc.lab.naming);
the per-node plan and apply are hercc.lab.nodes', the very code that brought
the lab's overlay up (`lab up`).

The far ends of enterprise links (lab/far_sides.py) follow: what a node's
plan must find (the ports its links name, its IPsec links' secrets) is made
before the nodes are planned, the far ends as the spec says now before they
are applied (a VXLAN's afresh, an IPsec link's when it is new or changed), and
what hangs off a node's links (a host on its bridge) once they are applied.

Nodes come and go: a node the spec adds is plugged into the underlay
(hercc.lab.underlay.add_hosts: its namespace, a NAT router for a nat node,
its bridge port, drop rules) and then gets its overlay like any node; a node
it removes has its overlay destroyed by the executor, then its namespaces
deleted. A node whose kind or endpoint changes (or whose namespace is gone)
is replaced: removed, then added. Drop rules of `unreachable` links are
rewritten where they change. The nodes that stay keep their bridge ports
and NAT addresses (topology_of's `running`).

The lab's gateways are planned and applied too, with the gateway service
(hercc.lab.gateways): a workload moved, added or removed changes their
peers and HAProxy backends. They are applied before the nodes' plans, so
that a node's new tunnel dials a gateway that knows it. The gateways
themselves (their names and namespaces) are the lab's since `up`. After an
apply, `lab check` tries the spec's public paths, `named` is restarted
with the new zones when they changed, and every exposed workload has its
server in its namespace as it is now (public_up.refresh_servers). The
NetFlow collectors follow the spec's `monitor netflow` (collectors_up), set
up before the nodes are applied, so a node's exporter finds them listening.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab import dns, gateways, moves, nodes, topology
from hercc.lab.collectors import Collector
from hercc.lab.collectors_up import apply_collectors, collector_changes
from hercc.lab.daemons import stop_all
from hercc.lab.far_sides import build_all, far_sides, join_all, prepare_all
from hercc.lab.keys import gateway_public_keys
from hercc.lab.naming import LabKeys, LabNaming, lab_naming
from hercc.lab.persistent.statefile import (
    LabState,
    kept_name,
    rerecord,
    save_state,
)
from hercc.lab.public_paths import public_paths
from hercc.lab.public_up import refresh_servers
from hercc.lab.topology import Block, Host
from hercc.lab.underlay import add_hosts, netns_exists, remove_hosts, set_block
from hercc.plan.apply import Step
from hercc.plan.diff import Plan, diff
from hercc.plan.node_service import live_system
from hercc.resources.action import Action
from hercc.resources.model import State


@dataclass(frozen=True)
class HostChange:
    """A node added to (CREATE), removed from (DELETE) or re-created on (REPLACE) the underlay."""

    node: str
    action: Action
    before: Host | None
    after: Host | None
    forces: tuple[str, ...] = ()  # why a node is replaced


@dataclass(frozen=True)
class Teardown:
    """A replaced node's overlay as it runs now, and the plan that destroys it."""

    lab_node: nodes.LabNode
    plan: Plan


@dataclass
class NodePlan:
    """A node's overlay plan; for a removed node, the plan that destroys its overlay."""

    lab_node: nodes.LabNode
    plan: Plan
    live: State
    host: HostChange | None = None  # the node comes, goes or is re-created
    teardown: Teardown | None = None  # a replaced node: destroyed first, then `plan` from nothing

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
    hosts: list[HostChange] = field(default_factory=list)
    blocks: list[tuple[str, Block | None]] = field(default_factory=list)  # drop rules to rewrite
    gateways: list[gateways.GatewayPlan] = field(default_factory=list)
    collectors: list[tuple[Action, Collector]] = field(default_factory=list)  # added, removed

    def counts(self) -> tuple[int, int, int]:
        plans = [g.plan for g in self.gateways]
        add = sum(n.plan.add for n in self.nodes) + sum(p.add for p in plans)
        change = sum(n.plan.change for n in self.nodes) + sum(p.change for p in plans)
        destroy = sum(
            n.plan.destroy + (n.teardown.plan.destroy if n.teardown else 0) for n in self.nodes
        )
        return add, change, destroy + sum(p.destroy for p in plans)

    @property
    def left_out(self) -> list[tuple[str, str]]:
        """(node, what and why) for what the spec asks and this machine cannot make."""
        return [(n.node, line) for n in self.nodes for line in n.lab_node.left_out]

    @property
    def no_changes(self) -> bool:
        return (
            not self.hosts
            and not self.blocks
            and not self.collectors
            and all(n.plan.no_changes for n in self.nodes)
            and all(g.plan.no_changes for g in self.gateways)
        )


def compile_for_running_lab(
    state: LabState, spec: str, sources: dict[str, str] | None = None
) -> tuple[ir.IR, LabKeys]:
    """`spec` compiled with the public keys of its nodes and gateways in the lab (new nodes get
    new keys; gateways are the lab's since `up`)."""
    from hercc.pipeline import compile_spec

    plain = compile_spec(spec, sources)
    want = [n.name for n in plain.ir.nodes]
    keys = LabKeys(state.keys_dir)
    keys.ensure(want)
    pubkeys = keys.public_keys(want)
    gateways = gateway_public_keys(keys.directory, [g.name for g in plain.ir.gateways])
    model = compile_spec(spec, pubkeys=pubkeys | gateways).ir
    pinned = sorted(n.name for n in model.nodes if n.pubkey != pubkeys[n.name])
    if pinned:
        raise LabError(f"nodes with a pinned pubkey cannot run in the lab: {', '.join(pinned)}")
    return model, keys


def host_changes(
    state: LabState, running: Mapping[str, Host], new: Sequence[Host]
) -> list[HostChange]:
    """The nodes to add, remove and re-create on the underlay, in the spec's order."""
    out: list[HostChange] = []
    for h in new:
        was = running.get(h.node)
        if was is None:
            out.append(HostChange(h.node, Action.CREATE, None, h))
            continue
        forces: list[str] = []
        if was.kind != h.kind:
            forces.append(f"nat ({was.kind} -> {h.kind})")
        elif was.public_ip != h.public_ip:
            forces.append(f"endpoint ({was.public_ip} -> {h.public_ip})")
        forces += [
            f"namespace {ns} is gone"
            for ns in (was.ns, was.router_ns)
            if ns and not netns_exists(ns)
        ]
        if forces:
            out.append(HostChange(h.node, Action.REPLACE, was, h, tuple(forces)))
    kept = {h.node for h in new}
    out += [HostChange(n, Action.DELETE, h, None) for n, h in running.items() if n not in kept]
    return out


def block_changes(
    state: LabState, blocks: Sequence[Block], hosts: Sequence[HostChange]
) -> list[tuple[str, Block | None]]:
    """The drop rules to rewrite in the namespaces that stay (new ones get theirs when made)."""
    made = {ns for c in hosts for h in (c.before, c.after) if h for ns in (h.ns, h.router_ns) if ns}
    old = {b.ns: b for b in state.blocks}
    new = {b.ns: b for b in blocks}
    return [
        (ns, new.get(ns))
        for ns in sorted(old.keys() | new.keys())
        if ns not in made and old.get(ns) != new.get(ns)
    ]


def refresh_named(state: LabState, model: ir.IR) -> None:
    """Restart the lab's named with `model`'s zones when they differ from those it serves."""
    internet = state.internet
    directory = Path(state.directory) / "dns"
    if internet is None or not dns.zones_changed(model, internet, directory):
        return
    old = [d for d in state.daemons if d.role == "named"]
    errors = stop_all(old)
    if errors:
        raise LabError("; ".join(errors))
    state.daemons = [d for d in state.daemons if d.role != "named"]
    named = dns.start_named(model, internet, directory)
    if named is not None:
        state.daemons.append(named)


def _retired(state: LabState, host: Host, keys: LabKeys) -> nodes.LabNode:
    """A node as it runs now, with an empty desired state: planned, its overlay goes."""
    mine = [i for i in state.interfaces if i.node == host.node]
    naming: LabNaming = lab_naming(
        state.prefix,
        host.node,
        {i.network: i.name for i in mine if not i.gateway},
        {i.gateway: i.name for i in mine if i.gateway},
    )
    return nodes.LabNode(host.node, naming, host.ns, keys, {})


def plan_lab(state: LabState, spec: str, sources: dict[str, str] | None = None) -> LabPlan:
    """Every node's plan from its live overlay to `spec`, and the underlay's. Reads, never changes
    (but for the key files of new nodes)."""
    if state.status != "up":
        raise LabError(f"lab {state.name!r} is not up (its `up` did not finish)")
    if not state.apply_dir or not state.hosts:
        raise LabError(f"lab {state.name!r} was made by an older hercc: re-create it")
    model, keys = compile_for_running_lab(state, spec, sources)
    names = {(i.node, kept_name(i)): i.name for i in state.interfaces}
    running = {h.node: h for h in state.hosts}
    topo = topology.topology_of(model, state.prefix, names, running)
    prepare_all(far_sides(model, topo, state.apply_dir))  # what a node's plan must find
    hosts = host_changes(state, running, topo.hosts)
    change_of = {c.node: c for c in hosts}
    replaced = {
        keys.public_key(c.node): f"node {c.node}" for c in hosts if c.action is Action.REPLACE
    }
    io = live_system()
    out: list[NodePlan] = []
    planned_nodes = nodes.lab_nodes(model, topo, keys)
    freed = moves.freed_namespaces(
        running, {n.node: n.desired for n in planned_nodes}, state.apply_dir
    )
    for n in planned_nodes:
        c = change_of.get(n.node)
        if c is not None and c.before is not None:  # replaced: from nothing, once torn down
            retired = _retired(state, c.before, keys)
            teardown, _ = nodes.plan_node(retired, {}, state.apply_dir, io)
            out.append(NodePlan(n, diff(n.desired, {}), {}, c, Teardown(retired, teardown)))
            continue
        plan, live = nodes.plan_node(n, n.desired, state.apply_dir, io, freed)
        out.append(NodePlan(n, nodes.renew_peers(plan, n.desired, live, replaced), live, c))
    for c in hosts:
        if c.action is Action.DELETE and c.before is not None:
            retired = _retired(state, c.before, keys)
            plan, live = nodes.plan_node(retired, {}, state.apply_dir, io)
            out.append(NodePlan(retired, plan, live, c))
    _moves_onto_existing_nodes(out)
    return LabPlan(
        state,
        spec,
        model,
        topo,
        keys,
        out,
        hosts,
        block_changes(state, topo.blocks, hosts),
        _gateway_plans(state, model),
        _collector_plan(state, topo),
    )


def _collector_plan(state: LabState, topo: topology.Topology) -> list[tuple[Action, Collector]]:
    add, gone = collector_changes(state.collectors, topo.collectors)
    return [(Action.DELETE, c) for c in gone] + [(Action.CREATE, c) for c in add]


def _moves_onto_existing_nodes(plans: list[NodePlan]) -> None:
    """LabError for a workload that moves onto a node this apply adds (or re-creates).

    New nodes are brought up before the others give anything away (no first
    handshake may be lost), so such a move takes two applies.
    """
    for ns, (giver, taker) in sorted(moves.moved_to(plans).items()):
        changing = next(p for p in plans if p.node == taker).host
        if changing is not None:
            raise LabError(
                f"namespace {ns} moves from node {giver} to node {taker}, which this apply "
                f"adds: apply the spec with node {taker} first, then move the workload"
            )


def _gateway_plans(state: LabState, model: ir.IR) -> list[gateways.GatewayPlan]:
    """Every gateway of the lab planned against what runs of it (the spec keeps the lab's set)."""
    running = sorted(g.gateway for g in state.gateways)
    wanted = sorted(g.name for g in model.gateways)
    if running != wanted:
        raise LabError(
            f"the lab runs the gateways made at `up` ({', '.join(running) or 'none'}), the spec "
            f"has {', '.join(wanted) or 'none'}: take the lab down and up to change them"
        )
    keys = LabKeys(state.keys_dir)
    return [gateways.plan(model, g, Path(state.directory), keys) for g in state.gateways]


def apply_lab(
    planned: LabPlan,
    progress: Callable[[str, Step], None] | None = None,
) -> list[str]:
    """Apply the lab's plan; the nodes changed. The lab's record follows.

    First the nodes that go (or are re-created) lose their overlay, then
    their namespaces; drop rules are rewritten; new nodes are plugged into
    the underlay; then every node's overlay plan is applied, in the order
    `lab up` uses, so that no first handshake is lost. A node whose apply
    fails is rolled back (hercc.plan.apply); what was done before it stays.
    LabError names both.
    """
    state = planned.state
    io = live_system()
    done: list[str] = []
    touched = False

    def run(n: nodes.LabNode, plan: Plan) -> None:
        def step_done(step: Step) -> None:
            if progress is not None:
                progress(n.node, step)

        try:
            nodes.apply_node(n, plan, state.apply_dir, io, on_netns=nodes.tune, progress=step_done)
        except LabError as exc:
            applied = f"; applied before it: {', '.join(done)}" if done else ""
            raise LabError(f"{exc}{applied}") from None

    try:
        for n in planned.nodes:
            c, old = n.host, n.teardown
            if c is None or c.before is None or c.action is Action.CREATE:
                continue
            touched = True
            retired, teardown = (old.lab_node, old.plan) if old else (n.lab_node, n.plan)
            if not teardown.no_changes:
                run(retired, teardown)
            errors = remove_hosts([c.before])
            if errors:
                raise LabError(f"node {c.node}: cannot remove it: {'; '.join(errors)}")
            nodes.forget(state.apply_dir, c.node)
            if c.action is Action.DELETE:
                done.append(c.node)
        for ns, block in planned.blocks:
            touched = True
            set_block(ns, block)
        fresh = [c.after for c in planned.hosts if c.after is not None]
        if fresh:
            touched = True
            add_hosts(planned.topology, fresh, [])
        if planned.collectors:
            touched = True
            t = planned.topology
            apply_collectors(
                t.underlay_ns, state.collectors, t.collectors, Path(state.directory), state.daemons
            )
        far = far_sides(planned.model, planned.topology, state.apply_dir)
        prepare_all(far)
        # as the spec says now (a VNI may have changed; a new IPsec link's responder answers
        # the node's initiate)
        recorded = list(state.daemons)
        try:
            build_all(far, [], state.daemons)
        finally:
            touched = touched or state.daemons != recorded  # a responder started or stopped
        for gp in planned.gateways:  # before the nodes' tunnels dial them
            if not gp.plan.no_changes:
                touched = True
                running = gateways.apply(gp)
                gone = [d for d in state.daemons if d.name == gp.gateway and d.role != "server"]
                state.daemons = [d for d in state.daemons if d not in gone] + running
        # the new nodes first with nobody dialling (as `lab up`), then the nodes that stay,
        # then the new ones dial: no first handshake meets a peer that does not know it yet
        new = [n for n in planned.nodes if n.host is not None and n.host.after is not None]
        for n in new:
            quiet, _ = nodes.plan_node(n.lab_node, nodes.withheld(n.desired), state.apply_dir, io)
            run(n.lab_node, quiet)
        nodes.wait_ports(planned.topology, {n.node for n in new})
        staying = [n for n in planned.nodes if n.host is None and not n.plan.no_changes]
        for n in moves.in_apply_order(staying):  # a workload's old node before its new one
            run(n.lab_node, n.plan)
            done.append(n.node)
        for n in new:
            rest, _ = nodes.plan_node(n.lab_node, n.desired, state.apply_dir, io)
            if not rest.no_changes:
                run(n.lab_node, rest)
            done.append(n.node)
        join_all(far)
    finally:
        if done or touched:
            rerecord(state, planned.topology, planned.spec, planned.model)
            state.public = public_paths(planned.model)
            state.left_out = [f"{node}: {line}" for node, line in planned.left_out]
            refresh_named(state, planned.model)
            refresh_servers(planned.model, planned.topology, Path(state.directory), state.daemons)
            save_state(state)
    return done
