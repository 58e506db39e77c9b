"""A lab node's overlay, planned and applied with the code of `hercc plan|apply`.

For each node of a lab, `lab_nodes` gives its desired state (plan/desired.py,
with the node's LabNaming and the lab's keys); `plan_node` plans it against
the node's live state, and `apply_node` carries the plan out, both with the
service of `hercc plan|apply` (plan/node_service.py): the live state is read
the way `hercc plan` reads a node (in a new lab, it is empty), a name that
exists and is not the node's is refused, wireguard-go runs in the node's
underlay namespace (its --underlay-netns), and the lab's node directory is
its --state-dir (the registry of the namespaces the node owns, `<node>.json`,
its wireguard-go PIDs, `<node>.wireguard-go.json`, and their logs,
`<node>.<interface>.log`; its tunnels' probes, `<node>.probes.json`; its
flow exporter, `<node>.exporter.json`).

`withheld` is a desired state without the peers' endpoints and keepalives
(and the tunnels' probes):
`lab up` applies it first on every node, so that every port is open and
every peer known everywhere before anyone dials (see hercc.lab.harness), and
`wait_ports` waits for those ports.

Every namespace the executor creates gets the lab's kernel settings first
(`tune`: no DAD, no router advertisements, no ICMP redirects: a relay sends
packets back out of the WireGuard interface they came in on, which IPv4
takes for a bad first hop); ICMP errors leave from the address of the
interface the packet came in on (the overlay address of a WireGuard
interface) and are not rate-limited, so TTL probes can name every relay on
a path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab import topology
from hercc.lab.enterprise_ipsec import node_setup
from hercc.lab.enterprise_l2 import runnable
from hercc.lab.naming import LabNaming, lab_naming
from hercc.lab.underlay import NS_SYSCTLS, TIMEOUT
from hercc.plan import node_service
from hercc.plan.apply import ApplyFailed, Step
from hercc.plan.desired import KeyLookup, desired_state
from hercc.plan.diff import Change, Plan
from hercc.plan.node_service import LiveSystem, NameConflict, NetnsHook, NodeContext
from hercc.resources.action import Action
from hercc.resources.ids import PeerId
from hercc.resources.model import State, state_of
from hercc.sysio.process import run
from hercc.sysio.procfs import cmdline, proc_start_time, read_pid_file

_OVERLAY_SYSCTLS = (
    *NS_SYSCTLS,
    "net.ipv4.icmp_errors_use_inbound_ifaddr=1",
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
)


@dataclass(frozen=True)
class LabNode:
    node: str
    naming: LabNaming
    underlay_ns: str
    keys: KeyLookup
    desired: State
    # what the spec asks of the node and this machine cannot make (no 8021q: its VLANs), and why
    left_out: tuple[str, ...] = ()

    def context(self, state_dir: str | Path, system: LiveSystem) -> NodeContext:
        """The node as `hercc plan|apply` sees it, with the lab's node directory as --state-dir."""
        ipsec = node_setup(state_dir, self.node)  # its charon (lab/enterprise_ipsec.py)
        return NodeContext.of(self.node, self.naming, self.keys, state_dir, system, ipsec=ipsec)


def lab_nodes(
    model: ir.IR, topo: topology.Topology, keys: KeyLookup, nodes: Iterable[str] | None = None
) -> list[LabNode]:
    """Every node's (or those of `nodes`) names and desired state in the lab `topo` of `model`."""
    out = []
    # The lab makes no gateway keys (yet): a tunnel to a gateway without one cannot be set up.
    keyed = tuple(g for g in model.gateways if g.pubkey is not None)
    model = dataclasses.replace(model, gateways=keyed)
    for node in nodes if nodes is not None else [n.name for n in model.nodes]:
        naming = lab_naming(
            topo.prefix,
            node,
            {m.network: m.wg_if for m in topo.members if m.node == node},
            {gw: name for n, gw, name in topo.tunnels if n == node},
        )
        desired, left_out = runnable(state_of(desired_state(model, node, naming, keys)))
        out.append(LabNode(node, naming, topo.host(node).ns, keys, desired, tuple(left_out)))
    return out


def withheld(desired: State) -> State:
    """`desired` with every peer's endpoint and keepalive left out, and no tunnel probes:
    nobody dials. (A probe's ping sent before its peer has an endpoint is a handshake
    attempt that fails, and WireGuard then waits 5 s before it tries again.)"""
    out = {a: r for a, r in desired.items() if r.kind != "probe"}
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


def plan_node(
    n: LabNode,
    desired: State,
    state_dir: str | Path,
    system: LiveSystem,
    freed: frozenset[str] = frozenset(),
) -> tuple[Plan, State]:
    """The plan from the node's live overlay to `desired`, and that live state. Reads only.

    `freed`: names another node's plan of the same apply deletes first (lab/moves.py).
    """
    try:
        planned = node_service.plan_node(n.context(state_dir, system), desired, freed)
    except NameConflict as exc:
        raise LabError(f"node {n.node}: {exc}") from None
    return planned.plan, planned.live


def apply_node(
    n: LabNode,
    plan: Plan,
    state_dir: str | Path,
    system: LiveSystem,
    *,
    on_netns: NetnsHook | None = None,
    progress: Callable[[Step], None] | None = None,
) -> None:
    """Carry `plan` out on node `n` with `hercc apply`'s executor; LabError if it fails.

    A failed apply is rolled back (hercc.plan.apply): the node is as it was.
    """
    ctx = n.context(state_dir, system)
    try:
        node_service.apply_plan(ctx, plan, n.underlay_ns, progress=progress, on_netns=on_netns)
    except ApplyFailed as exc:
        raise LabError(f"node {n.node}: apply failed and was rolled back: {exc}") from None


def recorded_pids(state_dir: str | Path, node: str) -> dict[str, int]:
    """The wireguard-go PIDs the executor recorded for `node` (interface -> PID)."""
    from hercc.plan.executor import wireguard_go_pid_file

    return read_pid_file(wireguard_go_pid_file(state_dir, node))


def running_probes(state_dir: str | Path, node: str) -> list[tuple[int, int]]:
    """(PID, start time) of the tunnel probes the executor recorded for `node` that still run
    as probes (state/probes.py): what `lab down` stops, by PID."""
    from hercc.state.probes import probe_of, probe_pid_file

    out = []
    for pid in read_pid_file(probe_pid_file(state_dir, node)).values():
        start = proc_start_time(pid)
        if start is not None and probe_of(cmdline(pid) or []) is not None:
            out.append((pid, start))
    return out


def running_exporters(state_dir: str | Path, node: str) -> list[tuple[int, int]]:
    """(PID, start time) of the flow exporter the executor recorded for `node`, if it still
    runs as one (state/exporter_proc.py): what `lab down` stops, by PID."""
    from hercc.state.exporter_proc import ExporterFiles, exporter_of

    out = []
    for pid in read_pid_file(ExporterFiles(Path(state_dir), node).pid).values():
        start = proc_start_time(pid)
        if start is not None and exporter_of(cmdline(pid) or []) is not None:
            out.append((pid, start))
    return out


def log_file(state_dir: str | Path, node: str, ifname: str) -> Path:
    """The executor's log of the wireguard-go of `ifname` on `node`."""
    return Path(state_dir) / f"{node}.{ifname}.log"


def forget(state_dir: str | Path, node: str) -> None:
    """Remove the executor's records of a node that left the lab (registry, PIDs, logs)."""
    for path in Path(state_dir).glob(f"{node}.*"):
        if path.is_file():
            path.unlink()


def renew_peers(plan: Plan, desired: State, live: State, replaced: Mapping[str, str]) -> Plan:
    """`plan` with every peer of a re-created node replaced too (`replaced`: pubkey ->
    "node X", the reason shown).

    The peer's session keys belong to the node's old instance; the new one
    would drop every packet of them until the session times out (15 s or more).
    """
    renewed: dict[str, Change] = {}
    for address, r in desired.items():
        who = replaced.get(r.id_as(PeerId).pubkey) if r.kind == "peer" else None
        if who is None or address not in live:
            continue
        old = next((c for c in plan.changes if c.address == address), None)
        changed = old.changed if old is not None else ()
        renewed[address] = Change(Action.REPLACE, address, live[address], r, changed, (), who)
    if not renewed:
        return plan
    kept = tuple(renewed.pop(c.address, c) for c in plan.changes)
    return Plan(kept + tuple(renewed[a] for a in sorted(renewed)))


def wait_ports(t: topology.Topology, only: Collection[str] | None = None) -> None:
    """wireguard-go binds its UDP port once it sees its (moved) TUN up: wait for the ports of
    every node of `t` (or of those in `only`)."""
    wanted: dict[str, set[int]] = {}
    for m in t.members:
        if only is None or m.node in only:
            wanted.setdefault(t.host(m.node).ns, set()).add(m.listen_port)
    deadline = time.monotonic() + 10
    while wanted:
        for ns in sorted(wanted):
            out = run(["ss", "-Hnlu"], netns=ns, timeout=5, error=LabError).stdout
            open_ports = set()
            for line in out.splitlines():
                fields = line.split()
                if len(fields) >= 4:
                    port = fields[3].rsplit(":", 1)[-1]
                    if port.isdigit():
                        open_ports.add(int(port))
            if wanted[ns] <= open_ports:
                del wanted[ns]
        if not wanted:
            break
        if time.monotonic() > deadline:
            raise LabError(f"WireGuard ports not open within 10 s: {wanted}")
        time.sleep(0.02)


def tune(ns: str) -> None:
    """The lab's kernel settings for a namespace of a node's overlay (see the module doc)."""
    run(["sysctl", "-qw", *_OVERLAY_SYSCTLS], netns=ns, timeout=TIMEOUT, error=LabError)
