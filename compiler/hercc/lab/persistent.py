"""Named labs that outlive the process that built them (`hercc lab up|check|status|exec|down`).

`up_lab` brings a spec up with the harness (hercc.lab.harness.Lab: the
underlay by the harness, every node's overlay by `hercc apply`'s code) and
returns, leaving the namespaces and the wireguard-go processes (detached, in
their own sessions) running. Everything it created is recorded in a state
file, STATE_DIR/<name>.json, next to the lab's own directory STATE_DIR/<name>/
(keys/, and nodes/: every node's state directory as `hercc apply` keeps it,
the registry of its namespaces `<node>.json`, its wireguard-go PIDs
`<node>.wireguard-go.json` and their logs), so that `hercc lab plan|apply`
(hercc.lab.overlay) can read and change a lab node like a real one. Every
later command starts from the state file alone:

  - `check_lab`: every source (node@network, workload) pings every overlay
    address of its networks, IPv4 and IPv6, in parallel;
  - `lab_status`: namespaces present, recorded PIDs alive, handshake ages;
  - `target_namespace`: the namespace behind a node, node@network or workload;
  - `down_lab`: kills the recorded PIDs (only if their start time still
    matches: a recycled PID is never killed), deletes the recorded namespaces,
    the lab's directory and the state file. Idempotent.

The state file is created exclusively (O_EXCL) before anything is built, so
two `up`s of one name cannot race, and a lab whose `up` was killed halfway
is still known to `down` (state "starting").
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hercc.diagnostics import LabError
from hercc.lab import nodes
from hercc.lab.harness import WG_RUN_DIR, Lab
from hercc.lab.keys import GeneratedKeys
from hercc.lab.spec import compile_for_lab
from hercc.lab.topology import Topology, prefix_for_lab
from hercc.sysio.files import write_atomic
from hercc.sysio.process import run, run_attached
from hercc.sysio.procfs import comm, proc_start_time, same_process, stop

STATE_DIR = Path(os.environ.get("HERCULES_LAB_DIR", "/var/lib/hercules/labs"))
STATE_VERSION = 1
DEFAULT_NAME = "lab"
CHECK_PARALLEL = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class LabExists(LabError):
    """A lab of that name is already recorded."""


class NoSuchLab(LabError):
    """No lab of that name is recorded."""


class NoSuchTarget(LabError):
    """exec named no node, node@network or workload of the lab."""

    def __init__(self, message: str, choices: Sequence[str]) -> None:
        super().__init__(message)
        self.choices = tuple(choices)


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


@dataclass
class Endpoint:
    """A source and destination of `check`: a node's member namespace or a workload."""

    name: str  # node@network or the workload's name
    kind: str  # node | workload
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
    underlay: list[list[str]] = field(default_factory=list)  # underlay_signature(topology)
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
        return cls(**fields)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise LabError(
            f"lab name {name!r}: 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
        )
    return name


def state_file(name: str, state_dir: Path | None = None) -> Path:
    return (state_dir or STATE_DIR) / f"{check_name(name)}.json"


def load_state(name: str, state_dir: Path | None = None) -> LabState:
    path = state_file(name, state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoSuchLab(f"no lab named {name!r} (no {path})") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: unreadable lab state ({exc})") from None
    try:
        return LabState.from_data(data)
    except (TypeError, KeyError, LabError) as exc:
        raise LabError(f"{path}: malformed lab state ({exc})") from None


def list_labs(state_dir: Path | None = None) -> list[str]:
    directory = state_dir or STATE_DIR
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.json") if _NAME.fullmatch(p.stem))


def _save(state: LabState, path: Path) -> None:
    write_atomic(path, state.to_json(), 0o600)


def _claim(state: LabState, path: Path) -> None:
    """Create the state file, failing if it exists: the lock against a second `up`."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        write_atomic(path, state.to_json(), 0o600, exclusive=True)
    except FileExistsError:
        raise LabExists(
            f"a lab named {state.name!r} exists ({path}): "
            f"`hercc lab down --name {state.name}` first"
        ) from None


# ---------------------------------------------------------------- processes


def alive(iface: Interface) -> bool:
    """The recorded process is running and is still the one that was recorded."""
    if iface.pid is None or iface.start_time is None:
        return False
    return same_process(iface.pid, iface.start_time)


def _netns_exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def _strays(state: LabState) -> list[tuple[int, int]]:
    """wireguard-go processes inside this lab's namespaces (for a lab whose `up` was cut short)."""
    found: list[tuple[int, int]] = []
    hosts = {i.host_ns for i in state.interfaces}
    for ns in state.namespaces:
        if ns not in hosts or not _netns_exists(ns):
            continue
        out = run(["ip", "netns", "pids", ns], check=False, timeout=10, error=LabError).stdout
        for word in out.split():
            if not word.isdigit():
                continue
            pid = int(word)
            start = proc_start_time(pid)
            if comm(pid) == "wireguard-go" and start is not None:
                found.append((pid, start))
    return found


# ---------------------------------------------------------------- up


def underlay_signature(p: Topology) -> list[list[str]]:
    """What `up` fixed for good: every node's kind and underlay addresses."""
    return [[h.node, h.kind, h.address, h.public_ip] for h in p.hosts]


def node_names(state: LabState) -> list[str]:
    return sorted(t.split(":", 1)[1] for t in state.targets if t.startswith("node:"))


def recorded_pids(state: LabState, node: str) -> dict[str, int]:
    """The wireguard-go PIDs of `node` as `hercc apply`'s executor recorded them."""
    return nodes.recorded_pids(state.apply_dir, node)


def rerecord(state: LabState, p: Topology, spec: str) -> None:
    """After `lab apply`: the lab as topology `p` names it, with the processes that now run.

    Namespaces and live wireguard-go processes of the old record that `p`
    no longer has stay recorded while they exist, so `down` still removes them.
    """
    old_ns = list(state.namespaces)
    old_ifaces = {i.name: i for i in state.interfaces}
    _record(state, p)
    state.spec = os.path.abspath(spec)
    state.underlay = underlay_signature(p)
    for iface in state.interfaces:
        prev = old_ifaces.get(iface.name)
        if prev is not None and alive(prev):
            iface.pid, iface.start_time, iface.log = prev.pid, prev.start_time, prev.log
    _record_pids(state, [i for i in state.interfaces if not alive(i)])
    names = {i.name for i in state.interfaces}
    state.interfaces += [i for n, i in old_ifaces.items() if n not in names and alive(i)]
    kept = set(state.namespaces)
    state.namespaces += [ns for ns in old_ns if ns not in kept and _netns_exists(ns)]


def save_state(state: LabState) -> None:
    """Write the state file back (next to the lab's directory)."""
    _save(state, state_file(state.name, Path(state.directory).parent))


def _record_pids(state: LabState, interfaces: Sequence[Interface]) -> None:
    """The PIDs and start times of `interfaces`' wireguard-go, from the executor's records."""
    pids = {n: recorded_pids(state, n) for n in {i.node for i in interfaces}}
    for iface in interfaces:
        pid = pids[iface.node].get(iface.name)
        iface.pid = pid
        iface.start_time = None if pid is None else proc_start_time(pid)


def _record(state: LabState, p: Topology) -> None:
    """The lab as topology `p` names it (no PIDs)."""
    state.namespaces = list(p.namespaces())
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
    workloads = {w.name for w in p.workloads}
    hosts = {h.node for h in p.hosts}
    targets = {"underlay": p.underlay_ns}
    for h in p.hosts:
        targets[f"node:{h.node}"] = h.ns
        if h.node not in workloads:
            targets[h.node] = h.ns
        if h.router_ns is not None:
            targets[f"router:{h.node}"] = h.router_ns
    for m in p.members:
        targets[f"{m.node}@{m.network}"] = m.ns
    for w in p.workloads:
        targets[f"workload:{w.name}"] = w.ns
        if w.name not in hosts:
            targets[w.name] = w.ns
    state.targets = targets


def up_lab(
    spec: str,
    name: str = DEFAULT_NAME,
    state_dir: Path | None = None,
    *,
    sources: dict[str, str] | None = None,
) -> LabState:
    """Compile `spec`, bring it up as lab `name` and record it; the lab keeps running.

    Raises LabExists when `name` is taken, LabError when the lab cannot be
    built (whatever was built is removed again), SpecError for a bad spec.
    """
    directory = state_dir or STATE_DIR
    path = state_file(name, directory)
    prefix = prefix_for_lab(name)
    for other in list_labs(directory):
        if other == name:
            continue
        with contextlib.suppress(LabError):
            if load_state(other, directory).prefix == prefix:
                raise LabError(f"labs {other!r} and {name!r} would share the name prefix {prefix}")
    labdir = directory / name
    state = LabState(
        name=name,
        prefix=prefix,
        spec=os.path.abspath(spec),
        directory=str(labdir),
        keys_dir=str(labdir / "keys"),
        apply_dir=str(labdir / "nodes"),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _claim(state, path)  # from here on, `down` knows this lab
    lab: Lab | None = None
    try:
        if labdir.exists():  # left over from a lab whose state file was removed by hand
            shutil.rmtree(labdir)
        labdir.mkdir(mode=0o700, parents=True)
        start = time.monotonic()
        keys = GeneratedKeys(Path(state.keys_dir))
        compiled, keys = compile_for_lab(spec, keys, sources=sources)
        state.timings["compile"] = round(time.monotonic() - start, 3)
        lab = Lab(compiled.ir, prefix=prefix, keys=keys, workdir=labdir)
        _record(state, lab.topology)
        state.underlay = underlay_signature(lab.topology)
        _save(state, path)
        lab.up()  # tears down what it built if it fails
        _record_pids(state, state.interfaces)
        for iface in state.interfaces:
            if iface.start_time is None:
                log = Path(iface.log).read_text(errors="replace").strip()
                raise LabError(f"wireguard-go for {iface.name} (pid {iface.pid}) exited: {log}")
        state.timings.update({k: round(v, 3) for k, v in lab.timings.items()})
        state.timings["up"] = round(time.monotonic() - start, 3)
        state.status = "up"
        _save(state, path)
    except BaseException:
        if lab is not None:
            try:
                lab.down()  # only what this lab built; idempotent after a failed up()
            except LabError:
                raise  # leftovers: keep the state file, so that `down` can retry
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        shutil.rmtree(labdir, ignore_errors=True)
        raise
    return state


# ---------------------------------------------------------------- down


def _teardown(state: LabState) -> list[str]:
    """Stop the lab's processes, delete its namespaces; what could not be removed."""
    errors: list[str] = []
    victims = [(i.pid, i.start_time) for i in state.interfaces if i.pid and i.start_time]
    if state.status != "up":
        victims += _strays(state)
    for pid, start in dict.fromkeys((p, s) for p, s in victims if p is not None and s):
        if not stop(pid, start):
            errors.append(f"wireguard-go pid {pid} did not exit")
    for iface in state.interfaces:
        if not alive(iface):
            with contextlib.suppress(FileNotFoundError):
                Path(iface.socket).unlink()
    for ns in reversed(state.namespaces):
        if not _netns_exists(ns):
            continue
        done = run(["ip", "netns", "del", ns], check=False, timeout=10, error=LabError)
        if done.returncode != 0 and _netns_exists(ns):
            errors.append(f"ip netns del {ns}: {done.stderr.strip()}")
    return errors


def down_lab(name: str = DEFAULT_NAME, state_dir: Path | None = None) -> LabState | None:
    """Remove lab `name` and its state; None when there was no such lab."""
    directory = state_dir or STATE_DIR
    try:
        state = load_state(name, directory)
    except NoSuchLab:
        shutil.rmtree(directory / check_name(name), ignore_errors=True)
        return None
    errors = _teardown(state)
    if errors:
        raise LabError(f"lab {name!r}: teardown incomplete: " + "; ".join(errors))
    shutil.rmtree(state.directory, ignore_errors=True)
    shutil.rmtree(state.keys_dir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        state_file(name, directory).unlink()
    return state


# ---------------------------------------------------------------- check


@dataclass(frozen=True)
class Probe:
    src: str
    dst: str
    address: str
    family: int  # 4 | 6
    network: str
    ok: bool = False


def probes(state: LabState) -> list[Probe]:
    """Every (source, destination address) pair that must answer: same network only."""
    out: list[Probe] = []
    for src in state.endpoints:
        for dst in state.endpoints:
            if dst.network != src.network:
                continue
            for addr in dst.addresses:
                fam = ipaddress.ip_address(addr).version
                out.append(Probe(src.name, dst.name, addr, fam, src.network))
    return out


def _ping(ns: str, address: str, family: int, wait: float) -> bool:
    argv = ["ping", f"-{family}", "-n", "-q", "-c", "1", "-W", f"{wait:g}", address]
    try:
        done = run(argv, netns=ns, check=False, timeout=wait + 5, error=LabError)
    except LabError:
        return False
    return done.returncode == 0


def check_lab(state: LabState, *, wait: float = 1.0, retry_wait: float = 6.0) -> list[Probe]:
    """Ping every probe, CHECK_PARALLEL at a time; what fails is tried once more.

    Two public peers that have not spoken yet both dial when the first
    packets cross in both directions at once; wireguard-go then drops both
    handshakes and tries again only after REKEY_TIMEOUT (5 s). So the probes
    between two nodes go first from the node whose name sorts first, then
    back, and a failed probe is retried waiting `retry_wait` (> 5 s) for the answer.
    """
    if state.status != "up":
        raise LabError(f"lab {state.name!r} is not up (its `up` did not finish)")
    missing = [ns for ns in {e.ns for e in state.endpoints} if not _netns_exists(ns)]
    if missing:
        raise LabError(f"lab {state.name!r}: namespaces gone: {', '.join(sorted(missing))}")
    by_name = {e.name: e for e in state.endpoints}
    todo = probes(state)
    done: dict[int, bool] = {}

    def ping(i: int, seconds: float) -> bool:
        p = todo[i]
        return _ping(by_name[p.src].ns, p.address, p.family, seconds)

    def forth(i: int) -> bool:
        return by_name[todo[i].src].node <= by_name[todo[i].dst].node

    rounds = [
        ([i for i in range(len(todo)) if forth(i)], wait),
        ([i for i in range(len(todo)) if not forth(i)], wait),
    ]
    with ThreadPoolExecutor(max_workers=CHECK_PARALLEL) as pool:
        for batch, seconds in rounds:
            for i, ok in zip(
                batch, list(pool.map(ping, batch, [seconds] * len(batch))), strict=True
            ):
                done[i] = ok
        failed = [i for i in range(len(todo)) if not done[i]]
        for i, ok in zip(
            failed, list(pool.map(ping, failed, [retry_wait] * len(failed))), strict=True
        ):
            done[i] = ok
    return [dataclasses.replace(p, ok=done[i]) for i, p in enumerate(todo)]


# ---------------------------------------------------------------- status


@dataclass(frozen=True)
class InterfaceStatus:
    iface: Interface
    alive: bool
    peers: int | None  # None: the interface could not be read
    handshaken: int
    latest_age: float | None  # seconds since the newest handshake on this interface


@dataclass(frozen=True)
class LabStatus:
    state: LabState
    namespaces_present: list[str]
    interfaces: list[InterfaceStatus]

    @property
    def healthy(self) -> bool:
        return (
            self.state.status == "up"
            and len(self.namespaces_present) == len(self.state.namespaces)
            and all(i.alive for i in self.interfaces)
        )


def _handshakes(iface: Interface) -> tuple[int | None, int, float | None]:
    if not _netns_exists(iface.ns):
        return None, 0, None
    done = run(
        ["wg", "show", iface.name, "latest-handshakes"],
        netns=iface.ns,
        check=False,
        timeout=5,
        error=LabError,
    )
    if done.returncode != 0:
        return None, 0, None
    stamps = [int(f[1]) for f in (ln.split() for ln in done.stdout.splitlines()) if len(f) == 2]
    seen = [s for s in stamps if s > 0]
    age = time.time() - max(seen) if seen else None
    return len(stamps), len(seen), age


def lab_status(state: LabState) -> LabStatus:
    present = [ns for ns in state.namespaces if _netns_exists(ns)]
    ifaces = []
    for iface in state.interfaces:
        peers, handshaken, age = _handshakes(iface)
        ifaces.append(InterfaceStatus(iface, alive(iface), peers, handshaken, age))
    return LabStatus(state, present, ifaces)


# ---------------------------------------------------------------- exec


def target_namespace(state: LabState, target: str) -> str:
    """The namespace of a node (underlay), node@network, a workload, router:NODE or underlay."""
    if target in state.targets:
        return state.targets[target]
    if ":" not in target and f"node:{target}" in state.targets:
        raise NoSuchTarget(
            f"{target!r} is a node and a workload: say node:{target} or workload:{target}",
            list(state.targets),
        )
    raise NoSuchTarget(
        f"lab {state.name!r} has no node or workload {target!r}", list(state.targets)
    )


def exec_in(state: LabState, target: str, argv: Sequence[str]) -> int:
    """Run argv in the target's namespace with this process's stdio; its exit status."""
    ns = target_namespace(state, target)
    if not _netns_exists(ns):
        raise LabError(f"namespace {ns} of {target!r} is gone")
    code = run_attached(argv, netns=ns, error=LabError)
    return code if code >= 0 else 128 - code


def iter_states(names: Sequence[str] | None, state_dir: Path | None = None) -> Iterator[LabState]:
    for name in names if names is not None else list_labs(state_dir):
        yield load_state(name, state_dir)
