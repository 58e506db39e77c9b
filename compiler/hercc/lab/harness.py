"""A lab: the underlay built by the harness, every node's overlay by `hercc apply`'s code.

The harness builds only what stands in for the machines and the network
between them (hercc.lab.underlay, from hercc.lab.topology): the underlay
namespace and its bridge, one underlay namespace per node, a NAT router
(nftables masquerade) per nat node, and drop rules for `unreachable` links.

Every node's overlay (its network namespaces, WireGuard interfaces,
addresses, peers, forwarding sysctls, workload namespaces, veths and
routes) is then planned and applied node by node with the code of
`hercc plan|apply` (hercc.lab.nodes): wireguard-go runs in the node's
underlay namespace, so that its UDP socket lives on the underlay; the lab's
`nodes` directory is every node's state directory.

wireguard-go opens its UDP port only once its link is up, and a handshake
that arrives before its receiver knows the sender is lost (and retried only
after 5 s). So the overlay comes up in two passes:

  1. every node with its peers' endpoints and keepalives withheld
     (nodes.withheld): every interface up with its key and port, every peer
     known everywhere, and nobody dials; then wait until every UDP port is open;
  2. every node planned again against its live state and applied: the
     endpoints and keepalives, as in-place peer updates (`~ peer`); then wait
     for the handshakes that they start.

Compile the spec with the lab's keys first (hercc.lab.compile_for_lab),
since routing copies node keys onto peers.

Every namespace the executor creates gets the lab's kernel settings first
(nodes.tune), so TTL probes (`hops`) can name every relay on a path.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab import nodes
from hercc.lab.collectors_up import add_collectors
from hercc.lab.daemons import Daemon
from hercc.lab.far_sides import build_all, far_sides, join_all
from hercc.lab.keys import GeneratedKeys, KeySource, gateway_owner, with_keys
from hercc.lab.naming import KeyFiles
from hercc.lab.public_up import PublicSide, tear_down_public
from hercc.lab.topology import Topology, new_prefix, topology_of
from hercc.lab.underlay import TIMEOUT, build_underlay, delete_namespace, netns_exists
from hercc.plan.diff import Plan
from hercc.plan.node_service import LiveSystem, live_system
from hercc.sysio.process import run
from hercc.sysio.procfs import proc_start_time, stop

TOOLS = ("ip", "nft", "wg", "wireguard-go", "ping", "ss", "sysctl")
WG_RUN_DIR = Path("/var/run/wireguard")
# ping's lines for an echo reply and for a time-exceeded error (IPv4, IPv6)
_ANSWER = re.compile(
    r"^(?:\d+ bytes from (?P<dst>[0-9A-Fa-f.:]+?):? icmp_seq"
    r"|From (?P<hop>[0-9A-Fa-f.:]+?):? icmp_seq=\d+ Time (?:to live )?exceeded)",
    re.MULTILINE,
)
PARALLEL = 16  # concurrent probes in pings()
APPLY_PARALLEL = 8  # nodes planned and applied at once


def missing_requirements(tools: Sequence[str] = TOOLS) -> str | None:
    """Why a live lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    return None


def who_answered(ping_output: str) -> str | None:
    """The address that answered a one-packet ping: the target, or a time-exceeded router."""
    found = _ANSWER.search(ping_output)
    if found is None:
        return None
    return str(ipaddress.ip_address(found.group("dst") or found.group("hop")))


class Lab:
    """A live network for one IR. Use as a context manager, or up() then down().

    `ir` must have its peers filled (routing pass, or hercc.lab.naive_mesh).
    Public keys are replaced by those of `keys` (default: fresh ones); pass
    the keys the IR was compiled with (hercc.lab.compile_for_lab). The
    working files (the nodes' state directory `nodes`: registries,
    wireguard-go PIDs and logs) go to `workdir` (default: a new temporary
    directory); down() removes it.
    """

    def __init__(
        self,
        model: ir.IR,
        *,
        prefix: str | None = None,
        keys: KeySource | None = None,
        handshake_timeout: float = 10.0,
        workdir: Path | None = None,
    ) -> None:
        self.prefix = prefix or new_prefix()
        self.topology: Topology = topology_of(model, self.prefix)
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"hercc-lab-{self.prefix}-"))
        else:
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.workdir = workdir
        self.node_dir = self.workdir / "nodes"  # every node's --state-dir
        self.keys: KeySource = keys or GeneratedKeys(self.workdir / "keys")
        self.model = model
        self.handshake_timeout = handshake_timeout
        self.namespaces: list[str] = []  # the underlay's, created by this lab, in order
        self.timings: dict[str, float] = {}
        self.plans: dict[str, list[Plan]] = {}  # node -> its plan of each pass
        self._nodes: list[nodes.LabNode] = []
        self.daemons: list[Daemon] = []  # named, the workloads' servers (hercc.lab.public_up)
        self.public = PublicSide(model, self.topology, self.workdir)
        self._up = False

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def node_names(self) -> list[str]:
        return [h.node for h in self.topology.hosts]

    def wireguard_go(self) -> dict[str, tuple[str, int]]:
        """WireGuard interface -> (node, PID of its wireguard-go), as the executor recorded them."""
        return {
            ifname: (node, pid)
            for node in self.node_names()
            for ifname, pid in nodes.recorded_pids(self.node_dir, node).items()
        }

    @property
    def left_out(self) -> list[str]:
        """What the spec asks and this machine cannot make, once up: "node: what: why"."""
        return [f"{n.node}: {line}" for n in self._nodes for line in n.left_out]

    @property
    def pids(self) -> list[int]:
        return [pid for _, pid in self.wireguard_go().values()]

    def overlay_namespaces(self) -> list[str]:
        """The namespaces the executor created (every node's registry)."""
        from hercc.state.registry import OwnedRegistry

        if not self.node_dir.is_dir():
            return []
        found: set[str] = set()
        for node in self.node_names():
            found |= OwnedRegistry(node, self.node_dir).load()
        return sorted(found)

    def up(self) -> None:
        """Build everything; on any failure, tear down what was built and re-raise."""
        if self._up:
            return
        self._up = True
        start = time.monotonic()
        try:
            self.model = with_keys(self.model, self.keys)
            for gw in self.model.gateways:  # written, so that `lab plan|apply` finds them
                self.keys.private_key_file(gateway_owner(gw.name))
            build_underlay(self.topology, self.namespaces)
            t = self.topology  # the collectors listen before any exporter starts
            add_collectors(t.underlay_ns, t.collectors, self.workdir, self.namespaces, self.daemons)
            far = far_sides(self.model, self.topology, self.node_dir)  # enterprise links' far ends
            build_all(far, self.namespaces, self.daemons)
            self.timings["underlay"] = time.monotonic() - start
            keys = KeyFiles(self.keys)
            self._nodes = nodes.lab_nodes(self.model, self.topology, keys)
            io = live_system()
            self._apply_all(io, withhold=True)
            self.timings["withheld"] = time.monotonic() - start
            nodes.wait_ports(self.topology)
            self.timings["ports"] = time.monotonic() - start
            self.public.model = self.model
            self.public.up(self.daemons)
            self.timings["public"] = time.monotonic() - start
            self.public.gateways_up(self.keys, self.daemons)  # listening before the nodes dial
            self.timings["gateways"] = time.monotonic() - start
            self._apply_all(io, withhold=False)
            join_all(far)
            self.timings["dialling"] = time.monotonic() - start
            self._wait_handshakes(io)
            self.timings["handshakes"] = time.monotonic() - start
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop this lab's processes and delete its namespaces. Idempotent."""
        from hercc.plan.executor.system import LinuxSystem
        from hercc.state.bpf_load import forget_namespace

        errors = tear_down_public(self.topology, self.daemons)
        self.daemons = []
        system = LinuxSystem()
        for ifname, (node, pid) in sorted(self.wireguard_go().items()):
            start = proc_start_time(pid)
            if start is not None and system.pid_alive(pid, ifname) and not stop(pid, start):
                errors.append(f"wireguard-go {ifname} of {node} (pid {pid}) did not exit")
                continue
            with contextlib.suppress(FileNotFoundError):
                (WG_RUN_DIR / f"{ifname}.sock").unlink()
        for node in self.node_names() if self.node_dir.is_dir() else []:
            for pid, start in nodes.running_probes(self.node_dir, node):
                if not stop(pid, start):
                    errors.append(f"the tunnel probe of {node} (pid {pid}) did not exit")
            for pid, start in nodes.running_exporters(self.node_dir, node):
                if not stop(pid, start, timeout=10):  # it sends what it holds first
                    errors.append(f"the flow exporter of {node} (pid {pid}) did not exit")
        for ns in [*self.overlay_namespaces(), *reversed(self.namespaces)]:
            if not netns_exists(ns):
                continue
            error = delete_namespace(ns)
            if error is not None:
                errors.append(error)
            forget_namespace(ns)  # the dataplane's pinned maps of the namespace
        if errors:
            raise LabError("lab teardown incomplete: " + "; ".join(errors))
        self.namespaces = []
        shutil.rmtree(self.workdir, ignore_errors=True)
        if isinstance(self.keys, GeneratedKeys):
            self.keys.discard()
        self._up = False

    # ------------------------------------------------------------ using it

    def stop_server(self, workload: str) -> None:
        """Stop the server of `workload` (it stays stopped until start_server)."""
        self.public.stop_server(workload, self.daemons)

    def start_server(self, workload: str) -> None:
        """Start the server of `workload` again (after stop_server)."""
        self.daemons.append(self.public.start_server(workload))

    def stop_gateway(self, gateway: str) -> None:
        """Kill `gateway`'s HAProxy and wireguard-go, as a lost gateway."""
        self.public.stop_gateway(gateway, self.daemons)

    def start_gateway(self, gateway: str) -> None:
        """Bring `gateway` back: planned against what is left of it, and applied. The nodes
        are left as they are: their tunnels' probes (state/probes.py) handshake again."""
        self.public.start_gateway(gateway, self.keys, self.daemons)

    def namespace(self, name: str) -> str:
        """The namespace behind a name.

        `node@network`: the node's namespace for that network; a workload name:
        the workload; a node name: its underlay namespace; `router:node`: its
        NAT router; `underlay`: the bridge; `internet`; a gateway's name (when no
        node or workload has it) or `gateway:NAME`. `workload:NAME` and
        `node:NAME` force the kind.
        """
        t = self.topology
        if name == "underlay":
            return t.underlay_ns
        if name == "internet" and t.internet is not None:
            return t.internet.ns
        gateways = {g.gateway: g.ns for g in t.gateways}
        if name.startswith("gateway:") and name[len("gateway:") :] in gateways:
            return gateways[name[len("gateway:") :]]
        if "@" in name:
            node, network = name.split("@", 1)
            try:
                return t.member(node, network).ns
            except KeyError:
                raise LabError(f"no member {name}") from None
        kind, _, bare = name.rpartition(":")
        workloads = {w.name: w.ns for w in t.workloads}
        hosts = {h.node: h for h in t.hosts}
        if kind == "router":
            router = hosts[bare].router_ns if bare in hosts else None
            if router is None:
                raise LabError(f"no NAT router for {bare!r}")
            return router
        if kind in ("", "workload") and bare in workloads:
            if kind == "" and bare in hosts:
                raise LabError(f"{bare!r} is a node and a workload: say node: or workload:")
            return workloads[bare]
        if kind in ("", "node") and bare in hosts:
            return hosts[bare].ns
        if kind == "" and bare in gateways:  # a node or workload of that name wins: gateway:NAME
            return gateways[bare]
        raise LabError(f"no namespace for {name!r}")

    def exec(
        self, name: str, argv: Sequence[str], *, timeout: float = TIMEOUT, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run(argv, netns=self.namespace(name), timeout=timeout, check=check, error=LabError)

    def ping(self, src: str, dst: str, count: int = 1, timeout: float = 2) -> bool:
        """True when `dst` answers a ping sent from inside `src`."""
        family = "-6" if ipaddress.ip_address(dst).version == 6 else "-4"
        argv = ["ping", family, "-n", "-q", "-c", str(count), "-W", f"{timeout:g}"]
        if count > 1:
            argv += ["-i", "0.2"]
        done = self.exec(src, [*argv, dst], timeout=count * (timeout + 0.2) + 5)
        return done.returncode == 0

    def pings(
        self, probes: Sequence[tuple[str, str]], timeout: float = 2, count: int = 1
    ) -> list[bool]:
        """ping() for every (source name, destination address), run in parallel."""
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            return list(pool.map(lambda pr: self.ping(pr[0], pr[1], count, timeout), probes))

    def probe(self, src: str, dst: str, ttl: int, timeout: float = 1) -> str | None:
        """Who answers one ping from `src` to `dst` sent with this TTL (IPv6: hop limit).

        The address of the router that reports "time exceeded", or `dst` itself
        when the ping arrives; None when nothing answers.
        """
        family = "-6" if ipaddress.ip_address(dst).version == 6 else "-4"
        argv = ["ping", family, "-n", "-c", "1", "-W", f"{timeout:g}", "-t", str(ttl), dst]
        done = self.exec(src, argv, timeout=timeout + 5)
        return who_answered(done.stdout)

    def hops(self, src: str, dst: str, max_hops: int = 8, timeout: float = 1) -> list[str | None]:
        """Every hop from `src` to `dst`, by TTL: the answering addresses, ending with `dst`.

        Probes TTL 1..max_hops in parallel and cuts the list after the first
        answer from `dst` itself.
        """
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            answers = list(
                pool.map(lambda t: self.probe(src, dst, t, timeout), range(1, max_hops + 1))
            )
        want = str(ipaddress.ip_address(dst))
        if want in answers:
            return answers[: answers.index(want) + 1]
        return answers

    def overlay_addresses(self) -> dict[str, list[tuple[str, str]]]:
        """network -> [(namespace name, overlay address)] of every member and workload.

        A member's name is `node@network`, a workload's its own name.
        """
        out: dict[str, list[tuple[str, str]]] = {}
        for m in self.topology.members:
            for a in m.addresses:
                out.setdefault(m.network, []).append((f"{m.node}@{m.network}", a.split("/")[0]))
        for w in self.topology.workloads:
            for addr in (w.address, w.address6):
                if addr is not None:
                    out.setdefault(w.network, []).append((w.name, addr))
        return out

    def rx_packets(self, name: str, ifname: str) -> int:
        """The receive packet counter of an interface in one of the lab's namespaces."""
        out = self.exec(name, ["cat", f"/sys/class/net/{ifname}/statistics/rx_packets"])
        if out.returncode != 0:
            raise LabError(f"no interface {ifname} in {name}: {out.stderr.strip()}")
        return int(out.stdout.strip())

    # ------------------------------------------------------------ building

    def _apply_all(self, io: LiveSystem, *, withhold: bool) -> None:
        """Plan every node against its live overlay and apply it (pass 1: `withhold`).

        The nodes share nothing but the underlay, so they are planned and
        applied side by side; the first failure is raised once all are done
        (down() removes what the others built).
        """

        def one(n: nodes.LabNode) -> None:
            desired = nodes.withheld(n.desired) if withhold else n.desired
            planned, _live = nodes.plan_node(n, desired, self.node_dir, io)
            self.plans.setdefault(n.node, []).append(planned)
            if not planned.no_changes:
                nodes.apply_node(n, planned, self.node_dir, io, on_netns=nodes.tune)

        with ThreadPoolExecutor(max_workers=APPLY_PARALLEL) as pool:
            futures = [pool.submit(one, n) for n in self._nodes]
        for future in futures:
            future.result()

    def _wait_handshakes(self, io: LiveSystem) -> None:
        pending: dict[tuple[str, str], set[str]] = {}
        for n in self._nodes:
            pending.update(nodes.dialled(n.desired))
        # a tunnel to a gateway the lab does not run dials on, unanswered
        idle = {g.pubkey for g in self.model.gateways if g.name not in self.public.gateways}
        pending = {k: v - idle for k, v in pending.items()}
        deadline = time.monotonic() + self.handshake_timeout
        while True:
            for (ns, ifname), keys in sorted(pending.items()):
                device = io.wireguard.read(ifname, netns=ns)
                keys -= {k for k, peer in device.peers.items() if peer.last_handshake}
            pending = {k: v for k, v in pending.items() if v}
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"no handshake within {self.handshake_timeout:g} s: "
                    + "; ".join(f"{k[1]}: {len(v)} peers" for k, v in sorted(pending.items()))
                )
            time.sleep(0.02)
