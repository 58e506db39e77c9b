"""Bring a plan up as namespaces, veths, a bridge, NAT routers and wireguard-go.

Order (each step for every node before the next step starts):
  1. namespaces, veths, the underlay bridge, addresses and routes, nftables;
  2. one wireguard-go per (node, network), started in the node's underlay
     namespace so that its UDP socket lives on the underlay; its TUN is then
     moved into the (node, network) namespace, addressed and brought up;
  3. everywhere: `wg setconf` of the config without endpoints or keepalives
     (every peer known, nobody dials yet), then the private key (setconf
     replaces the key too) and listen port; wait until every UDP port is open;
  4. everywhere: `wg addconf` of the full config: endpoints and keepalives;
  5. wait for the handshakes that the configs start by themselves.

Steps 3 and 4 are one function per (node, network): `Lab(configure=...)`,
by default `wg_configure` (wg setconf/addconf). It is the seam where the
node-side plan/apply code can take over the WireGuard configuration of a
lab node: it gets a MemberSetup (the IR node and membership, the lab's
namespace and interface, the rendered config, the private key file) and a
stage (1: before any UDP port is open, 2: once every port is open).

The configs come from the real WireGuard backend by default
(hercc.backends.wireguard); compile the spec with the lab's keys first
(hercc.lab.compile_for_lab), since routing copies node keys onto peers.

Relaying namespaces forward, send ICMP errors from the address of the
interface the packet came in on (the overlay address of their WireGuard
interface) and do not rate-limit them, so TTL probes (`hops`) can name every
relay on a path.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hercc import ir
from hercc.lab.keys import GeneratedKeys, KeySource, with_keys
from hercc.lab.run import LabError, ip_batch, ns_argv, run
from hercc.lab.topology import WORKLOAD_GW6, WORKLOAD_LL6, Member, Plan, new_prefix, plan
from hercc.lab.wgconf import BackendRenderer, Renderer, handshake_expected, strip_endpoints
from hercc.state.registry import owner_alias

TOOLS = ("ip", "nft", "wg", "wireguard-go", "ping", "ss")
WG_RUN_DIR = Path("/var/run/wireguard")
_NS_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
    # A relay sends packets back out of the WireGuard interface they came in on,
    # which IPv4 takes for a bad first hop and answers with ICMP redirects: off.
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
    "net.ipv4.conf.all.accept_redirects=0",
    "net.ipv4.conf.default.accept_redirects=0",
    "net.ipv6.conf.all.accept_redirects=0",
    "net.ipv6.conf.default.accept_redirects=0",
)
# with forwarding on (ip_forward for a network with a range, IPv6 forwarding for
# one with a range6: what plan/desired.py asks of a node that forwards)
_FORWARD4 = "net.ipv4.ip_forward=1"
_FORWARD6 = "net.ipv6.conf.all.forwarding=1"
_FORWARDING = (
    "net.ipv4.icmp_errors_use_inbound_ifaddr=1",
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
)
# ping's lines for an echo reply and for a time-exceeded error (IPv4, IPv6)
_ANSWER = re.compile(
    r"^(?:\d+ bytes from (?P<dst>[0-9A-Fa-f.:]+?):? icmp_seq"
    r"|From (?P<hop>[0-9A-Fa-f.:]+?):? icmp_seq=\d+ Time (?:to live )?exceeded)",
    re.MULTILINE,
)
PARALLEL = 16  # concurrent probes in pings()


@dataclass(frozen=True)
class MemberSetup:
    """What configuring one (node, network)'s WireGuard interface needs."""

    model: ir.IR
    node: ir.Node
    membership: ir.Membership
    member: Member  # the lab's namespace, interface name, port, addresses
    conf: str  # the rendered setconf text (no private key)
    conf_file: Path  # that text, written out
    private_key_file: Path
    workdir: Path  # a private directory for scratch files


# configure(setup, stage): stage 1 before any port is open, stage 2 after
MemberConfigurator = Callable[[MemberSetup, int], None]


def _wg(ns: str, args: Sequence[str]) -> str:
    return run(ns_argv(ns, ["wg", *args])).stdout


def wg_configure(setup: MemberSetup, stage: int) -> None:
    """The lab's WireGuard configuration of one (node, network), with wg(8).

    Stage 1: every peer without endpoints or keepalives (`wg setconf`), then
    the private key and listen port. Stage 2: the full config (`wg addconf`),
    so that dialling starts only once every side knows its peers.
    """
    m = setup.member
    if stage == 1:
        stage1 = setup.workdir / f"{m.wg_if}.stage1.conf"
        stage1.write_text(strip_endpoints(setup.conf), encoding="utf-8")
        # setconf replaces the whole device config, private key included: key after it
        _wg(m.ns, ["setconf", m.wg_if, str(stage1)])
        _wg(
            m.ns,
            [
                "set",
                m.wg_if,
                "listen-port",
                str(m.listen_port),
                "private-key",
                str(setup.private_key_file),
            ],
        )
    else:
        _wg(m.ns, ["addconf", m.wg_if, str(setup.conf_file)])


def _mtu(mtu: int | None) -> str:
    return "" if mtu is None else f" mtu {mtu}"


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
    the keys the IR was compiled with (hercc.lab.compile_for_lab). `render`
    gives each interface's setconf text: by default the real backend's;
    `configure` applies it to one interface (default: wg_configure). The
    working files (configs, wireguard-go logs) go to `workdir` (default: a
    new temporary directory); down() removes it.
    """

    def __init__(
        self,
        model: ir.IR,
        *,
        prefix: str | None = None,
        keys: KeySource | None = None,
        render: Renderer | None = None,
        configure: MemberConfigurator | None = None,
        handshake_timeout: float = 10.0,
        workdir: Path | None = None,
    ) -> None:
        self.prefix = prefix or new_prefix()
        self.plan: Plan = plan(model, self.prefix)
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"hercc-lab-{self.prefix}-"))
        else:
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.workdir = workdir
        self.keys: KeySource = keys or GeneratedKeys(self.workdir / "keys")
        self.model = model
        self.render: Renderer = render if render is not None else BackendRenderer()
        self.configure: MemberConfigurator = configure if configure is not None else wg_configure
        self.handshake_timeout = handshake_timeout
        self.namespaces: list[str] = []  # created by this lab, in order
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # wg interface -> wireguard-go
        self.timings: dict[str, float] = {}
        self._expected: dict[str, list[str]] = {}  # wg interface -> peers it dials
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

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def up(self) -> None:
        """Build everything; on any failure, tear down what was built and re-raise."""
        if self._up:
            return
        self._up = True
        start = time.monotonic()
        try:
            self.model = with_keys(self.model, self.keys)
            self._underlay()
            self.timings["underlay"] = time.monotonic() - start
            self._interfaces()
            self.timings["interfaces"] = time.monotonic() - start
            self._configure()
            self.timings["configured"] = time.monotonic() - start
            self._wait_handshakes()
            self.timings["handshakes"] = time.monotonic() - start
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop this lab's processes and delete its namespaces. Idempotent."""
        errors: list[str] = []
        for name, proc in list(self.processes.items()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    try:
                        proc.wait(timeout=3)
                    except subprocess.TimeoutExpired:
                        errors.append(f"wireguard-go {name} (pid {proc.pid}) did not exit")
                        continue
            with contextlib.suppress(FileNotFoundError):
                (WG_RUN_DIR / f"{name}.sock").unlink()
            del self.processes[name]
        for ns in reversed(list(self.namespaces)):
            done = run(["ip", "netns", "del", ns], check=False, timeout=10)
            if done.returncode == 0 or not Path("/run/netns", ns).exists():
                self.namespaces.remove(ns)
            else:
                errors.append(f"ip netns del {ns}: {done.stderr.strip()}")
        if not errors:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if isinstance(self.keys, GeneratedKeys):
                self.keys.discard()
            self._up = False
        if errors:
            raise LabError("lab teardown incomplete: " + "; ".join(errors))

    # ------------------------------------------------------------ using it

    def namespace(self, name: str) -> str:
        """The namespace behind a name.

        `node@network`: the node's namespace for that network; a workload name:
        the workload; a node name: its underlay namespace; `router:node`: its
        NAT router; `underlay`: the bridge. `workload:NAME` and `node:NAME`
        force the kind.
        """
        p = self.plan
        if name == "underlay":
            return p.underlay_ns
        if "@" in name:
            node, network = name.split("@", 1)
            try:
                return p.member(node, network).ns
            except KeyError:
                raise LabError(f"no member {name}") from None
        kind, _, bare = name.rpartition(":")
        workloads = {w.name: w.ns for w in p.workloads}
        hosts = {h.node: h for h in p.hosts}
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
        raise LabError(f"no namespace for {name!r}")

    def exec(
        self, name: str, argv: Sequence[str], *, timeout: float = 10.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run(ns_argv(self.namespace(name), argv), timeout=timeout, check=check)

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
        for m in self.plan.members:
            for a in m.addresses:
                out.setdefault(m.network, []).append((f"{m.node}@{m.network}", a.split("/")[0]))
        for w in self.plan.workloads:
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

    def _netns_add(self, ns: str) -> None:
        if Path("/run/netns", ns).exists():
            raise LabError(f"namespace {ns} already exists (another lab with prefix?)")
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)

    def _underlay(self) -> None:
        p = self.plan
        for ns in p.namespaces():
            self._netns_add(ns)
        for ns in p.namespaces():
            run(ns_argv(ns, ["sysctl", "-qw", *_NS_SYSCTLS]))
        ip_batch(
            [
                f"link add {v.if_a} netns {v.ns_a}{_mtu(v.mtu)} type veth "
                f"peer name {v.if_b} netns {v.ns_b}{_mtu(v.mtu)}"
                for v in p.veths
            ]
        )
        batches: dict[str, list[str]] = {ns: ["link set lo up"] for ns in p.namespaces()}
        under = batches[p.underlay_ns]
        under += ["link add br0 type bridge", "link set br0 up"]
        under += [f"link set {port} master br0 up" for port in p.bridge_ports]
        for h in p.hosts:
            cmds = batches[h.ns]
            cmds += [f"address add {h.address} dev ul", "link set ul up"]
            if h.gateway is None:
                cmds.append("route add default dev ul")
            else:
                cmds.append(f"route add default via {h.gateway} dev ul")
            if h.router_ns is not None:
                batches[h.router_ns] += [
                    f"address add {h.router_inside} dev lan",
                    f"address add {h.router_outside} dev wan",
                    "link set lan up",
                    "link set wan up",
                    "route add default dev wan",
                ]
        for w in p.workloads:
            # both ends carry the owner alias that `hercc plan` reads as "ours"
            alias = owner_alias(w.node)
            cmds = batches[w.ns]
            cmds.append(f"link set eth0 alias {alias} up")
            side = batches[w.member_ns]
            side.append(f"link set {w.member_if} alias {alias} up")
            if w.address is not None and w.gateway is not None:
                cmds += [
                    f"address add {w.address}/32 dev eth0",
                    f"route add default via {w.gateway} dev eth0 onlink",
                ]
                side.append(f"route add {w.address}/32 dev {w.member_if}")
            if w.address6 is not None:
                cmds += [
                    f"address add {WORKLOAD_LL6}/64 dev eth0 nodad",
                    f"address add {w.address6}/128 dev eth0 nodad",
                    f"route add ::/0 via {WORKLOAD_GW6} dev eth0",
                ]
                side += [
                    f"address add {WORKLOAD_GW6}/64 dev {w.member_if} nodad",
                    f"route add {w.address6}/128 dev {w.member_if}",
                ]
        for ns, cmds in batches.items():
            ip_batch(cmds, ns=ns)
        for h in p.hosts:
            if h.router_ns is not None:
                run(ns_argv(h.router_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
                self._nft(
                    h.router_ns,
                    "table ip herclab_nat {\n"
                    "  chain postrouting {\n"
                    "    type nat hook postrouting priority srcnat; policy accept;\n"
                    '    oifname "wan" masquerade\n'
                    "  }\n"
                    "}\n",
                )
        for b in p.blocks:
            addrs = ", ".join(b.peers)
            chains = [
                ("input", f"ip saddr {{ {addrs} }} drop"),
                ("output", f"ip daddr {{ {addrs} }} drop"),
            ]
            if b.router:
                chains.append(
                    ("forward", f"ip saddr {{ {addrs} }} drop\n    ip daddr {{ {addrs} }} drop")
                )
            body = "".join(
                f"  chain {hook} {{\n"
                f"    type filter hook {hook} priority filter; policy accept;\n"
                f"    {rule}\n"
                "  }\n"
                for hook, rule in chains
            )
            self._nft(b.ns, "table ip herclab_block {\n" + body + "}\n")

    def _nft(self, ns: str, script: str) -> None:
        path = self.workdir / f"{ns}.nft"
        path.write_text(script, encoding="utf-8")
        run(ns_argv(ns, ["nft", "-f", str(path)]))

    def _interfaces(self) -> None:
        p = self.plan
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
        for m in p.members:
            if (WG_RUN_DIR / f"{m.wg_if}.sock").exists():
                raise LabError(f"{WG_RUN_DIR}/{m.wg_if}.sock exists: interface name in use")
            log = (self.workdir / f"{m.wg_if}.log").open("wb")
            with log:
                proc = subprocess.Popen(
                    ns_argv(p.host(m.node).ns, ["wireguard-go", "-f", m.wg_if]),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            self.processes[m.wg_if] = proc
        deadline = time.monotonic() + 10
        waiting = {m.wg_if for m in p.members}
        while waiting:
            for name in sorted(waiting):
                proc = self.processes[name]
                if proc.poll() is not None:
                    log_text = (self.workdir / f"{name}.log").read_text(errors="replace")
                    raise LabError(f"wireguard-go {name} exited {proc.returncode}: {log_text}")
                if (WG_RUN_DIR / f"{name}.sock").exists():
                    waiting.discard(name)
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise LabError(f"wireguard-go did not create {sorted(waiting)} within 10 s")
            time.sleep(0.02)
        by_node: dict[str, list[str]] = {}
        for m in p.members:
            by_node.setdefault(p.host(m.node).ns, []).append(f"link set {m.wg_if} netns {m.ns}")
        for ns, cmds in by_node.items():
            ip_batch(cmds, ns=ns)
        for m in p.members:
            cmds = [f"link set {m.wg_if} mtu {m.mtu} alias {owner_alias(m.node)}"]
            cmds += [
                f"address add {a} dev {m.wg_if}" + (" nodad" if ":" in a else "")
                for a in m.addresses
            ]
            cmds.append(f"link set {m.wg_if} up")
            ip_batch(cmds, ns=m.ns)
            if m.forwarding:
                on = [*([_FORWARD4] if m.forward4 else []), *([_FORWARD6] if m.forward6 else [])]
                run(ns_argv(m.ns, ["sysctl", "-qw", *on, *_FORWARDING]))

    def _wg(self, ns: str, args: Sequence[str]) -> str:
        return _wg(ns, args)

    def _configure(self) -> None:
        p = self.plan
        nodes = {n.name: n for n in self.model.nodes}
        setups: list[MemberSetup] = []
        for m in p.members:
            node = nodes[m.node]
            member = next(x for x in node.networks if x.network == m.network)
            conf = self.render(self.model, node, member)
            conf_file = self.workdir / f"{m.wg_if}.conf"
            conf_file.write_text(conf, encoding="utf-8")
            setups.append(
                MemberSetup(
                    self.model,
                    node,
                    member,
                    m,
                    conf,
                    conf_file,
                    self.keys.private_key_file(m.node),
                    self.workdir,
                )
            )
        for setup in setups:
            self.configure(setup, 1)
        self._wait_ports()
        for setup in setups:
            self.configure(setup, 2)
        self._expected = {s.member.wg_if: handshake_expected(s.conf) for s in setups}

    def _wait_ports(self) -> None:
        """wireguard-go binds its UDP port once it sees its (moved) TUN up."""
        p = self.plan
        wanted: dict[str, set[int]] = {}
        for m in p.members:
            wanted.setdefault(p.host(m.node).ns, set()).add(m.listen_port)
        deadline = time.monotonic() + 10
        while wanted:
            for ns in sorted(wanted):
                out = run(ns_argv(ns, ["ss", "-Hnlu"]), timeout=5).stdout
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
            time.sleep(0.05)

    def _wait_handshakes(self) -> None:
        p = self.plan
        pending = {m.wg_if: set(self._expected[m.wg_if]) for m in p.members}
        ns_of = {m.wg_if: m.ns for m in p.members}
        deadline = time.monotonic() + self.handshake_timeout
        while True:
            for name in sorted(pending):
                out = self._wg(ns_of[name], ["show", name, "latest-handshakes"])
                for line in out.splitlines():
                    fields = line.split()
                    if len(fields) == 2 and fields[1] != "0":
                        pending[name].discard(fields[0])
                if not pending[name]:
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"no handshake within {self.handshake_timeout:g} s: "
                    + "; ".join(f"{k}: {len(v)} peers" for k, v in sorted(pending.items()))
                )
            time.sleep(0.05)
