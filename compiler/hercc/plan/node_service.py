"""The plan of one node against the live system, and its apply: shared by the CLI and the lab.

A NodeContext says which node, under which names (Naming), with which keys
(None: private and preshared keys are left as they are on the node; `psks`
makes the preshared keys a plan wants and nobody has made yet), where
its records live (state_dir: the registry of the namespaces it owns,
`<node>.json`, its wireguard-go PIDs and logs, and its tunnels' probes'
PIDs) and through what it is
read and changed (LiveSystem: the hercc.state reader, the WireGuard driver,
and the resolver of host name endpoints).

`plan_node` reads the live state in the form of the desired one
(`read_live`), then `plan_against` resolves the desired host name endpoints
as WireGuard stores them (plan/endpoints.py) and diffs the two
(plan/diff.py); it refuses, with NameConflict, to create a name that exists
and is not ours (`conflicts`). `apply_plan` first makes the missing
preshared keys (`make_psks`), then carries the plan out with the executor
(plan/executor.SystemExecutor), transactionally (plan/apply.py).
A gateway is planned and applied through the same two seams, with its own
live read and an executor that also runs HAProxy (plan/gateway_service.py).
The confirm window of `apply --confirm-timeout` is plan/node_confirm.py.
IPsec links: the node's charon and secrets are `ctx.ipsec` (plan/ipsec_setup.py).

Nothing here prints: the CLI (hercc.cli.plan_apply) and the lab
(hercc.lab.nodes) put results and errors in their own words.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.plan.apply import Executor, Restore, Step, UndoLog, apply_steps, steps_of
from hercc.plan.desired import PSK_UNKNOWN, KeyLookup, PskMaker, desired_state
from hercc.plan.desired_links import links_netns
from hercc.plan.diff import Change, Plan, diff
from hercc.plan.endpoints import Resolver, resolve_endpoints, with_written
from hercc.plan.executor import SystemExecutor, wireguard_unavailable_reason
from hercc.plan.executor.haproxy import HaproxyExecutor
from hercc.plan.ipsec_setup import IpsecSetup, ipsec_executor, ipsec_query
from hercc.resources.action import Action
from hercc.resources.fingerprints import fingerprint
from hercc.resources.ids import BpfId, InterfaceId, NftId, PeerId, RouteId, SysctlId
from hercc.resources.model import Resource, State, state_of
from hercc.resources.naming import WORKLOAD_IFNAME, Naming
from hercc.resources.sysctl import SYSCTL_DEFAULTS
from hercc.state import (
    LiveState,
    OwnedRegistry,
    ProcSysctl,
    PyrouteNetlink,
    StateReader,
    WireGuardDriver,
    default_driver,
)
from hercc.state.ipsec import IpsecQuery, Vici, ViciSocket
from hercc.state.probes import probe_pid_file
from hercc.state.wireguard.model import resolved_endpoint

SOCKET_DIR = "/var/run/wireguard"
# called with every namespace the executor creates, before anything goes into it
NetnsHook = Callable[[str], None]


class Reader(Protocol):
    """What the live state is read with: hercc.state.StateReader (tests pass a fake)."""

    def read(
        self,
        node: str,
        owned: Iterable[str],
        *,
        also: Iterable[str] = (),
        sysctls: Mapping[str, Iterable[str]] | None = None,
        workload_ifname: str = WORKLOAD_IFNAME,
        tables: Iterable[str] = (),
        probes: Path | None = None,
        dataplane: Iterable[str] = (),
        ipsec: IpsecQuery | None = None,
        exporter: Path | None = None,
    ) -> LiveState: ...


@dataclass(frozen=True)
class LiveSystem:
    """How a node is read and changed: the live-state reader and the WireGuard driver.

    `resolve` turns a host name endpoint into what a device stores (as the drivers do).
    """

    reader: Reader
    wireguard: WireGuardDriver
    resolve: Resolver = resolved_endpoint
    vici: Callable[[str], Vici] = ViciSocket  # a charon by its VICI socket


def live_system() -> LiveSystem:
    """The real one: netlink, /proc/sys and WireGuard (kernel or wireguard-go)."""
    netlink = PyrouteNetlink()
    wg = default_driver()
    return LiveSystem(StateReader(netlink, wg, ProcSysctl()), wg)


@dataclass(frozen=True)
class NodeContext:
    node: str
    naming: Naming
    keys: KeyLookup | None
    state_dir: str | Path
    registry: OwnedRegistry
    system: LiveSystem
    psks: PskMaker | None = None
    ipsec: IpsecSetup = field(default_factory=IpsecSetup)

    @classmethod
    def of(
        cls,
        node: str,
        naming: Naming,
        keys: KeyLookup | None,
        state_dir: str | Path,
        system: LiveSystem,
        psks: PskMaker | None = None,
        ipsec: IpsecSetup | None = None,
    ) -> NodeContext:
        """The context of `node`; RegistryError for a name that cannot name its records."""
        registry = OwnedRegistry(node, state_dir)
        return cls(node, naming, keys, state_dir, registry, system, psks, ipsec or IpsecSetup())

    def charon(self) -> Vici:
        return self.system.vici(self.ipsec.vici)


@dataclass(frozen=True)
class Planned:
    plan: Plan
    desired: State
    live: State


class MissingPsk(OperationError):
    """Peers want a preshared key nobody has made, and there is nowhere to make it."""

    def __init__(self, node: str, peers: Sequence[str]) -> None:
        which = f"peer {peers[0]} needs" if len(peers) == 1 else f"peers {', '.join(peers)} need"
        super().__init__(
            f"node {node}: {which} a preshared key (psk on) that is not known here, "
            "and there is no keys directory to make it in"
        )
        self.node = node
        self.peers = list(peers)


class NameConflict(OperationError):
    """The plan would create names that exist and are not ours."""

    def __init__(self, node: str, problems: Sequence[str]) -> None:
        super().__init__("refusing to plan: " + "; ".join(problems))
        self.node = node
        self.problems = list(problems)


def naming_for(prefix: str) -> Naming:
    """The default names with `prefix` in front of every namespace (--netns-prefix)."""
    base = Naming()
    return replace(
        base,
        netns_prefix=prefix + base.netns_prefix,
        workload_netns_prefix=prefix + base.workload_netns_prefix,
    )


# --------------------------------------------------------------------------- plan


def _network_namespaces(desired: State) -> set[str]:
    return {r.id_as(InterfaceId).ns for r in desired.values() if r.kind == "wireguard"}


def read_live(
    node: str,
    desired: State,
    owned: Iterable[str],
    reader: Reader,
    workload_ifname: str = WORKLOAD_IFNAME,
    state_dir: str | Path | None = None,
    vici: Vici | None = None,
    links_ns: str | None = None,
) -> tuple[State, frozenset[str]]:
    """The live state of `node` in the form of `desired`, and the foreign names.

    What to read: the owned namespaces, the desired ones that exist without
    being ours (they may hold an end of a veth of ours), and the managed
    sysctls (model.SYSCTL_DEFAULTS, plus any desired) and the nftables
    tables in every network namespace and every owned one that is not
    desired; the liveness probes recorded under `state_dir`
    (state/probes.py) and its flow exporter (state/exporter_proc.py); the
    eBPF attachments where the plan wants some (and where the node pinned
    programs); the IPsec connections in charon (`vici`) when the plan wants
    some or the node recorded some. The reader returns the state as is: the
    rules it shares with the desired state (veth pairs, sysctl defaults,
    private key fingerprints, link-local addresses) are applied by
    hercc.state and hercc.resources.
    """
    owned = frozenset(owned)
    desired_ns = {r.id for r in desired.values() if r.kind == "netns"}
    sysctl_ns = _network_namespaces(desired) | (owned - desired_ns)
    keys = set(SYSCTL_DEFAULTS) | {
        r.id_as(SysctlId).key for r in desired.values() if r.kind == "sysctl"
    }
    live = reader.read(
        node,
        owned,
        also=sorted((desired_ns - owned) | ({links_ns} if links_ns is not None else set())),
        sysctls={ns: keys for ns in sysctl_ns},
        workload_ifname=workload_ifname,
        tables=sorted(sysctl_ns),
        probes=None if state_dir is None else probe_pid_file(state_dir, node),
        dataplane=sorted({r.id_as(BpfId).ns for r in desired.values() if r.kind == "bpf"}),
        ipsec=ipsec_query(vici, state_dir, node, desired),
        exporter=None if state_dir is None else Path(state_dir),
    )
    return dict(live.state), frozenset(live.foreign)


def conflicts(plan: Plan, foreign: frozenset[str], socket_dir: str = SOCKET_DIR) -> list[str]:
    """Why the plan must not run: names it would create that exist and are not ours."""
    out: list[str] = []
    for c in plan.changes:
        if c.action is not Action.CREATE or c.after is None:
            continue
        r = c.after
        if r.kind == "netns" and r.id in foreign:
            out.append(f"namespace {r.id} exists and is not Hercules' (not in the registry)")
        elif r.kind == "port" and r.id not in foreign:
            ns, ifname = r.id_as(InterfaceId)
            out.append(
                f"interface {ifname} (a port of bridge {r.attrs.get('bridge')}) does not exist "
                f"in namespace {ns}: ports are attached, never created"
            )
        elif r.kind in ("wireguard", "veth", "bridge", "vxlan", "vlan"):
            ns, ifname = r.id_as(InterfaceId)
            if r.id in foreign:
                out.append(
                    f"interface {ifname} exists in namespace {ns} and is not Hercules' "
                    "(no hercules alias)"
                )
            if r.kind == "wireguard" and os.path.exists(os.path.join(socket_dir, f"{ifname}.sock")):
                out.append(
                    f"interface {ifname} exists and is not Hercules' here: "
                    f"{socket_dir}/{ifname}.sock is in use"
                )
            if r.kind == "veth":
                other = f"{r.attrs.get('peer_netns')}/{r.attrs.get('peer_ifname')}"
                if other in foreign:
                    out.append(
                        f"interface {r.attrs.get('peer_ifname')} exists in namespace "
                        f"{r.attrs.get('peer_netns')} and is not Hercules' (no hercules alias)"
                    )
        elif r.kind == "route" and r.id in foreign:
            ns, dst = r.id_as(RouteId)
            out.append(f"route {dst} exists in namespace {ns} and is not Hercules'")
        elif r.kind == "nft" and r.id in foreign:
            ns, family, table = r.id_as(NftId)
            out.append(
                f"nftables table {family} {table} exists in namespace {ns} and is not "
                "Hercules' (no hercules comment)"
            )
        elif r.kind == "ipsec" and r.id in foreign:
            out.append(f"charon has a connection {r.id} that is not Hercules' (not recorded)")
        elif r.kind == "bpf" and r.id in foreign:
            ns, ifname, hook = r.id_as(BpfId)
            out.append(
                f"a program is attached at {hook} of {ifname} in namespace {ns} and is not "
                "Hercules' (not pinned under its bpffs directory)"
            )
    return out


def _keep_live_secrets(desired: State, live: State) -> State:
    """Without keys, private and preshared keys are left as they are.

    Except what needs no key to tell: a PSK the spec does not want is removed,
    and a wanted one that is missing stays wanted (PSK_UNKNOWN).
    """
    out = dict(desired)
    for address, r in desired.items():
        have = live.get(address)
        if have is None:
            continue
        attrs = dict(r.attrs)
        if "private_key" in attrs and "private_key" in have.attrs:
            attrs["private_key"] = have.attrs["private_key"]
        if attrs.get("preshared_key") == PSK_UNKNOWN and have.attrs.get("preshared_key"):
            attrs["preshared_key"] = have.attrs["preshared_key"]
        out[address] = replace(r, attrs=attrs)
    return out


def _wanted_psks(plan: Plan) -> list[Change]:
    """The changes that set a preshared key nobody has made yet (PSK_UNKNOWN)."""
    return [
        c
        for c in plan.changes
        if c.after is not None
        and c.after.kind == "peer"
        and c.after.attrs.get("preshared_key") == PSK_UNKNOWN
    ]


def _made(change: Change, fp: str) -> Change:
    assert change.after is not None
    after = replace(change.after, attrs={**change.after.attrs, "preshared_key": fp})
    changed = tuple(
        (name, old, fp if name == "preshared_key" else new) for name, old, new in change.changed
    )
    return replace(change, after=after, changed=changed)


def make_psks(ctx: NodeContext, plan: Plan) -> Plan:
    """`plan` with every wanted preshared key made (ctx.psks) and set by its fingerprint.

    MissingPsk, before anything changes, when there is no way to make them.
    """
    wanted = {c.address: c for c in _wanted_psks(plan)}
    if not wanted:
        return plan
    if ctx.psks is None:
        raise MissingPsk(ctx.node, sorted(c.resource.label or c.address for c in wanted.values()))
    out = []
    for c in plan.changes:
        if c.address in wanted and c.after is not None:
            ns, _ifname, _key = c.after.id_as(PeerId)
            peer = c.after.label
            prefix = ctx.naming.netns_prefix
            if peer is None or not ns.startswith(prefix):
                raise OperationError(f"{c.address}: cannot tell the pair of its preshared key")
            c = _made(c, fingerprint(ctx.psks.make_psk(ns[len(prefix) :], ctx.node, peer)))
        out.append(c)
    return Plan(tuple(out))


def desired_of(model: ir.IR, ctx: NodeContext) -> State:
    """What `model` asks the node to have, under the context's names and keys."""
    return state_of(desired_state(model, ctx.node, ctx.naming, ctx.keys))


def plan_node(ctx: NodeContext, desired: State, freed: frozenset[str] = frozenset()) -> Planned:
    """The plan from the node's live state to `desired`. Reads, never changes.

    NameConflict when it would create a name that exists and is not ours,
    unless it is in a namespace of `freed`: namespaces that another plan of
    the same apply deletes first (a workload moving between the nodes of a
    lab, lab/moves.py). OperationError, before anything is read, when a
    secret the IPsec links load cannot be resolved.
    """
    ctx.ipsec.secrets(desired.values())
    live, foreign = read_live(
        ctx.node,
        desired,
        ctx.registry.load(),
        ctx.system.reader,
        ctx.naming.workload_ifname,
        ctx.state_dir,
        ctx.charon(),
        links_netns(ctx.naming),
    )
    # a freed namespace goes with everything in it (ids start with their namespace)
    kept = frozenset(f for f in foreign if f.split("/", 1)[0] not in freed)
    return plan_against(ctx, desired, live, kept)


def plan_against(ctx: NodeContext, desired: State, live: State, foreign: frozenset[str]) -> Planned:
    """The plan from `live` to `desired`, secrets kept without keys; NameConflict as plan_node."""
    if ctx.keys is None:
        desired = _keep_live_secrets(desired, live)
    desired, written = resolve_endpoints(desired, ctx.system.resolve)
    plan = with_written(diff(desired, live), written)
    problems = conflicts(plan, foreign)
    if problems:
        raise NameConflict(ctx.node, problems)
    return Planned(plan, desired, live)


# --------------------------------------------------------------------------- apply


def check_wireguard(plan: Plan) -> None:
    """OperationError when the plan makes a WireGuard interface and none can run here."""
    if any(c.after is not None and c.after.kind == "wireguard" for c in plan.changes):
        reason = wireguard_unavailable_reason()
        if reason is not None:
            raise OperationError(reason)


class _Watched:
    """An executor that calls `on_netns` for each namespace it has created."""

    def __init__(self, inner: Executor, on_netns: NetnsHook) -> None:
        self.inner = inner
        self.on_netns = on_netns

    def create(self, resource: Resource) -> None:
        self.inner.create(resource)
        if resource.kind == "netns":
            self.on_netns(resource.id)

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        self.inner.update(before, after, changed)

    def delete(self, resource: Resource) -> Restore:
        return self.inner.delete(resource)


def apply_plan(
    ctx: NodeContext,
    plan: Plan,
    underlay_netns: str | None,
    *,
    progress: Callable[[Step], None] | None = None,
    on_netns: NetnsHook | None = None,
    haproxy: HaproxyExecutor | None = None,
) -> UndoLog:
    """Carry `plan` out on the node; wireguard-go runs in `underlay_netns` (None: the host's).

    A failed apply is rolled back and raised as plan.apply.ApplyFailed: the
    node is as it was. The undo log of a successful one is returned, for a
    confirm window. The preshared keys it wants are made first (make_psks).
    `haproxy` carries out the `haproxy` resources (a gateway's); the `ipsec`
    ones go to the node's charon, with their secrets resolved now.
    """
    plan = make_psks(ctx, plan)
    kinds: dict[str, Executor] = {} if haproxy is None else {"haproxy": haproxy}
    ipsec = ipsec_executor(plan, ctx.charon(), ctx.ipsec, ctx.state_dir, ctx.node)
    if ipsec is not None:
        kinds["ipsec"] = ipsec
    executor: Executor = SystemExecutor(
        ctx.node,
        ctx.naming,
        ctx.keys,
        ctx.system.wireguard,
        ctx.registry,
        underlay_netns,
        state_dir=ctx.state_dir,
        kinds=kinds,
    )
    if on_netns is not None:
        executor = _Watched(executor, on_netns)
    return apply_steps(steps_of(plan), executor, progress)
