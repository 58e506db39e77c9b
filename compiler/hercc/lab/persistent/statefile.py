"""The state file of a named lab: what `up` built, for every later command.

Every lab has a directory of its own, <root>/<name>/ (root: $HERCULES_LAB_DIR,
default /var/lib/hercules/labs; a name is a DNS label, so it is safe as a
file name and in the lab's name prefix): `state.json`, `lock` (held by
up/apply/down, hercc.lab.persistent.locking), `keys/` and `nodes/`.

The state file records a lab's namespaces, its WireGuard interfaces
with their wireguard-go PIDs and start times, the sources and destinations
of `check` and the names `exec` knows (`LabState`). It is created
exclusively (`claim`) before anything is built, so two `up`s of one name
cannot race, carries a version, and is filled from the lab's topology
(`record`, and `rerecord` after `lab apply`). Kept apart from up/down,
check and status, which all start from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab import nodes
from hercc.lab.collectors import Collector
from hercc.lab.daemons import Daemon
from hercc.lab.far_sides import far_namespaces, far_sides
from hercc.lab.harness import WG_RUN_DIR
from hercc.lab.keys import gateway_owner
from hercc.lab.public import GatewayHost, Internet
from hercc.lab.public_paths import PublicPath
from hercc.lab.topology import Block, Host, Topology, prefix_for_lab
from hercc.lab.underlay import netns_exists
from hercc.sysio.files import write_atomic
from hercc.sysio.procfs import proc_start_time, same_process

DEFAULT_ROOT = Path("/var/lib/hercules/labs")
STATE_FILE = "state.json"
LOCK_FILE = "lock"
STATE_VERSION = 2
DEFAULT_NAME = "lab"
NAME_MAX = 31
_NAME = re.compile(rf"[a-z0-9][a-z0-9-]{{0,{NAME_MAX - 1}}}")


class LabExists(LabError):
    """A lab of that name is already recorded."""


class NoSuchLab(LabError):
    """No lab of that name is recorded."""


class OldLab(LabError):
    """The lab was made by an older hercc, with its state in <root>/<name>.json."""


# ---------------------------------------------------------------- the state file


@dataclass
class Interface:
    """One WireGuard interface: its wireguard-go process and where it lives."""

    name: str
    node: str
    network: str
    ns: str  # the (node, network) namespace holding the TUN
    host_ns: str  # the node's underlay namespace, where wireguard-go and its socket live
    socket: str
    log: str
    listen_port: int
    pid: int | None = None
    start_time: int | None = None  # /proc/<pid>/stat field 22, in clock ticks since boot
    gateway: str = ""  # a node's tunnel to this gateway ("": the node's interface of `network`)


@dataclass
class Endpoint:
    """A source and destination of `check`: a node's member namespace, a workload, or an
    end of an enterprise link (lab/far_sides.py)."""

    name: str  # node@network, the workload's name, or near:<link> / far:<link> / ipsec:<conn>:local
    kind: str  # node | workload | enterprise
    network: str
    ns: str
    addresses: list[str]
    node: str = ""  # the node it runs on


@dataclass
class LabState:
    name: str
    prefix: str
    spec: str
    directory: str
    keys_dir: str
    created: str
    status: str = "starting"  # starting | up
    namespaces: list[str] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)  # exec name -> namespace
    timings: dict[str, float] = field(default_factory=dict)
    # the --state-dir of the lab's nodes for plan/apply ("": a lab made before it existed)
    apply_dir: str = ""
    hosts: list[Host] = field(default_factory=list)  # the nodes on the underlay
    blocks: list[Block] = field(default_factory=list)  # the drop rules of `unreachable` links
    gateways: list[GatewayHost] = field(default_factory=list)  # the gateways' namespaces
    internet: Internet | None = None  # the internet namespace (client, DNS server)
    daemons: list[Daemon] = field(default_factory=list)  # named, servers, gateways' processes
    public: list[PublicPath] = field(default_factory=list)  # what `check` tries from internet
    collectors: list[Collector] = field(default_factory=list)  # NetFlow collectors (nfcapd)
    # "node: what: why" for what the spec asks and this machine cannot make (no 8021q: VLANs)
    left_out: list[str] = field(default_factory=list)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> LabState:
        if data.get("version") != STATE_VERSION:
            raise LabError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
        fields = dict(data)
        fields["interfaces"] = [Interface(**i) for i in data.get("interfaces", [])]
        fields["endpoints"] = [Endpoint(**e) for e in data.get("endpoints", [])]
        fields["hosts"] = [Host(**h) for h in data.get("hosts", [])]
        fields["blocks"] = [
            Block(b["ns"], b["router"], tuple(b["peers"])) for b in data.get("blocks", [])
        ]
        fields["gateways"] = [GatewayHost(**g) for g in data.get("gateways", [])]
        internet = data.get("internet")
        fields["internet"] = None if internet is None else Internet(**internet)
        fields["daemons"] = [Daemon(**d) for d in data.get("daemons", [])]
        fields["collectors"] = [Collector(**c) for c in data.get("collectors", [])]
        fields["public"] = [
            PublicPath(**{**p, "answers": tuple(p["answers"])}) for p in data.get("public", [])
        ]
        return cls(**fields)


def state_root() -> Path:
    """Where the labs live: $HERCULES_LAB_DIR (read at each call: tests set it), or the default."""
    return Path(os.environ.get("HERCULES_LAB_DIR") or DEFAULT_ROOT)


def check_name(name: str) -> str:
    """A lab name is a DNS label: 1-31 of a-z 0-9 -, starting with a letter or digit."""
    if not _NAME.fullmatch(name):
        raise LabError(
            f"lab name {name!r}: 1-{NAME_MAX} of a-z 0-9 -, starting with a letter or digit"
        )
    return name


def lab_dir(name: str, state_dir: Path | None = None) -> Path:
    return (state_dir or state_root()) / check_name(name)


def state_file(name: str, state_dir: Path | None = None) -> Path:
    return lab_dir(name, state_dir) / STATE_FILE


def load_state(name: str, state_dir: Path | None = None) -> LabState:
    path = state_file(name, state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        old = path.parent.with_name(f"{name}.json")
        if old.is_file():  # hercc before labs had directories of their own
            raise OldLab(
                f"lab {name!r} was made by an older hercc ({old}): take it down with that "
                f"version, or delete its namespaces (`ip netns list`, prefix "
                f"{prefix_for_lab(name)}) and the file"
            ) from None
        raise NoSuchLab(f"no lab named {name!r} (no {path})") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: unreadable lab state ({exc})") from None
    try:
        return LabState.from_data(data)
    except (TypeError, KeyError, LabError) as exc:
        raise LabError(f"{path}: malformed lab state ({exc})") from None


def list_labs(state_dir: Path | None = None) -> list[str]:
    """The labs with a state file (readable or not)."""
    root = state_dir or state_root()
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and (p / STATE_FILE).exists()
    )


def write_state(state: LabState, path: Path) -> None:
    write_atomic(path, state.to_json(), 0o600)


def save_state(state: LabState) -> None:
    """Write the state file back (next to the lab's directory)."""
    write_state(state, state_file(state.name, Path(state.directory).parent))


def claim(state: LabState, path: Path) -> None:
    """Create the state file, failing if it exists: a second `up` of one name is refused."""
    try:
        write_atomic(path, state.to_json(), 0o600, exclusive=True)
    except FileExistsError:
        raise LabExists(
            f"a lab named {state.name!r} exists ({path}): "
            f"`hercc lab down --name {state.name}` first"
        ) from None


def kept_name(iface: Interface) -> str:
    """What a running lab keeps `iface`'s name for (topology_of's `wg_names`): its network,
    or `gateway:<name>` for a node's tunnel to a gateway."""
    return gateway_owner(iface.gateway) if iface.gateway else iface.network


def alive(iface: Interface) -> bool:
    """The recorded process is running and is still the one that was recorded."""
    if iface.pid is None or iface.start_time is None:
        return False
    return same_process(iface.pid, iface.start_time)


# ---------------------------------------------------------------- recording a topology


def recorded_pids(state: LabState, node: str) -> dict[str, int]:
    """The wireguard-go PIDs of `node` as `hercc apply`'s executor recorded them."""
    return nodes.recorded_pids(state.apply_dir, node)


def rerecord(state: LabState, p: Topology, spec: str, model: ir.IR) -> None:
    """After `lab apply`: the lab as topology `p` names it, with the processes that now run.

    Namespaces and live wireguard-go processes of the old record that `p`
    no longer has stay recorded while they exist, so `down` still removes them.
    """
    old_ns = list(state.namespaces)
    old_ifaces = {i.name: i for i in state.interfaces}
    record(state, p, model)
    state.spec = os.path.abspath(spec)
    for iface in state.interfaces:
        prev = old_ifaces.get(iface.name)
        if prev is not None and alive(prev):
            iface.pid, iface.start_time, iface.log = prev.pid, prev.start_time, prev.log
    record_pids(state, [i for i in state.interfaces if not alive(i)])
    names = {i.name for i in state.interfaces}
    state.interfaces += [i for n, i in old_ifaces.items() if n not in names and alive(i)]
    kept = set(state.namespaces)
    state.namespaces += [ns for ns in old_ns if ns not in kept and netns_exists(ns)]


def record_pids(state: LabState, interfaces: Sequence[Interface]) -> None:
    """The PIDs and start times of `interfaces`' wireguard-go, from the executor's records."""
    pids = {n: recorded_pids(state, n) for n in {i.node for i in interfaces}}
    for iface in interfaces:
        pid = pids[iface.node].get(iface.name)
        iface.pid = pid
        iface.start_time = None if pid is None else proc_start_time(pid)


def record(state: LabState, p: Topology, model: ir.IR) -> None:
    """The lab as topology `p` of `model` names it (no PIDs): every WireGuard interface,
    the nodes' networks' and their gateway tunnels'."""
    state.hosts = list(p.hosts)
    state.blocks = list(p.blocks)
    state.gateways = list(p.gateways)
    state.internet = p.internet
    state.collectors = list(p.collectors)
    far = far_sides(model, p, state.apply_dir)
    state.namespaces = [*p.namespaces(), *far_namespaces(far)]
    state.interfaces = [
        Interface(
            name=m.wg_if,
            node=m.node,
            network=m.network,
            ns=m.ns,
            host_ns=p.host(m.node).ns,
            socket=str(WG_RUN_DIR / f"{m.wg_if}.sock"),
            log=str(nodes.log_file(state.apply_dir, m.node, m.wg_if)),
            listen_port=m.listen_port,
        )
        for m in p.members
    ]
    network_of = {(t.node, gw.name): t.network for gw in model.gateways for t in gw.tunnels}
    for node, gateway, name in p.tunnels:
        network = network_of[(node, gateway)]
        state.interfaces.append(
            Interface(
                name=name,
                node=node,
                network=network,
                ns=p.member(node, network).ns,
                host_ns=p.host(node).ns,
                socket=str(WG_RUN_DIR / f"{name}.sock"),
                log=str(nodes.log_file(state.apply_dir, node, name)),
                listen_port=0,  # it only dials
                gateway=gateway,
            )
        )
    state.endpoints = [
        Endpoint(
            f"{m.node}@{m.network}",
            "node",
            m.network,
            m.ns,
            [a.split("/")[0] for a in m.addresses],
            m.node,
        )
        for m in p.members
    ]
    state.endpoints += [
        Endpoint(
            w.name, "workload", w.network, w.ns, [a for a in (w.address, w.address6) if a], w.node
        )
        for w in p.workloads
    ]
    state.targets = exec_targets(p)
    for side in far:  # enterprise links' two ends, and what else their far sides name
        for end in side.endpoints():
            state.endpoints.append(
                Endpoint(end.name, "enterprise", end.network, end.ns, [*end.addresses], end.node)
            )
            state.targets[end.name] = end.ns
        state.targets |= side.targets()


def exec_targets(p: Topology) -> dict[str, str]:
    """The names `exec` knows: KIND:NAME for every node, workload and gateway (and NAT
    router), the bare name where only one of them has it, node@network, underlay, internet."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for h in p.hosts:
        by_name.setdefault(h.node, []).append(("node", h.ns))
    for w in p.workloads:
        by_name.setdefault(w.name, []).append(("workload", w.ns))
    for g in p.gateways:
        by_name.setdefault(g.gateway, []).append(("gateway", g.ns))
    targets = {"underlay": p.underlay_ns}
    if p.internet is not None:
        by_name.setdefault("internet", []).append(("internet", p.internet.ns))
    for name, kinds in by_name.items():
        for kind, ns in kinds:
            if kind != "internet":
                targets[f"{kind}:{name}"] = ns
        if len(kinds) == 1:
            targets[name] = kinds[0][1]
    for h in p.hosts:
        if h.router_ns is not None:
            targets[f"router:{h.node}"] = h.router_ns
    for c in p.collectors:
        targets[f"collector:{c.address}"] = c.ns
    for m in p.members:
        targets[f"{m.node}@{m.network}"] = m.ns
    return targets
