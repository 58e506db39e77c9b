"""`hercc lab check`: every source pings every overlay address of its networks; the public paths.

The probes are the lab's endpoints (node@network and workloads, from the
state file) crossed within each network, IPv4 and IPv6; `check_lab` pings
them in parallel, in the order that keeps two public peers from dialling
each other at once, and retries what failed. `check_public` tries every
public path the state file records (hercc.lab.public_paths) from the
internet namespace: http and https by name through each gateway (curl
--resolve, so SNI and Host are the name's, and the lab CA verifies the
workload's certificate), tcp by a connect and the server's banner, and a
DNS query per name. `check_collectors`: each NetFlow collector's nfcapd runs
and listens on its address and port, and every node's underlay namespace
(where an exporter sends from) reaches its address. Kept apart from status:
this sends traffic, status only reads.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hercc.diagnostics import LabError
from hercc.lab.collectors import Collector
from hercc.lab.collectors_up import ROLE, listening
from hercc.lab.daemons import alive
from hercc.lab.persistent.statefile import LabState
from hercc.lab.public_paths import PublicPath
from hercc.lab.underlay import netns_exists
from hercc.sysio.process import run

CHECK_PARALLEL = 32


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
    missing = [ns for ns in {e.ns for e in state.endpoints} if not netns_exists(ns)]
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


@dataclass(frozen=True)
class PublicProbe:
    path: PublicPath
    ok: bool
    answer: str  # who answered: a workload, the DNS records; or what went wrong


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _argv(p: PublicPath, dns_server: str) -> list[str]:
    if p.kind in ("http", "https"):
        resolve = f"{p.name}:{p.port}:{_host(p.address)}"
        return ["curl", "-sS", "--max-time", "3", "--resolve", resolve, f"{p.kind}://{p.name}/"]
    if p.kind == "tcp":
        script = f"exec 3<>/dev/tcp/{p.address}/{p.port} && head -n 1 <&3"
        return ["timeout", "3", "bash", "-c", script]
    dig = ["dig", "+short", "+time=2", "+tries=1", f"@{dns_server}", p.name]
    return ["sh", "-c", f"{' '.join(dig)} A && {' '.join(dig)} AAAA"]


def _try(ns: str, p: PublicPath, dns_server: str) -> PublicProbe:
    try:
        done = run(_argv(p, dns_server), netns=ns, check=False, timeout=10, error=LabError)
    except LabError as exc:
        return PublicProbe(p, False, str(exc))
    out = done.stdout.split()
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()
        return PublicProbe(p, False, why[-1] if why else f"exit {done.returncode}")
    if p.kind == "dns":
        got = tuple(sorted(out))
        return PublicProbe(p, got == p.answers, " ".join(got) or "no records")
    who = out[0] if out else ""
    return PublicProbe(p, who in p.answers, who or "an empty answer")


def check_public(state: LabState) -> list[PublicProbe]:
    """Every recorded public path whose gateway runs (dns: while named runs), in parallel."""
    internet = state.internet
    if internet is None or not netns_exists(internet.ns):
        return []
    running = {d.name for d in state.daemons if d.role == "haproxy" and alive(d)}
    named = any(d.role == "named" and alive(d) for d in state.daemons)
    todo = [p for p in state.public if (named if p.kind == "dns" else p.gateway in running)]
    with ThreadPoolExecutor(max_workers=CHECK_PARALLEL) as pool:
        return list(pool.map(lambda p: _try(internet.ns, p, internet.address), todo))


@dataclass(frozen=True)
class CollectorProbe:
    collector: Collector
    running: bool  # its nfcapd, as recorded
    listening: bool
    unreachable: tuple[str, ...]  # the nodes whose underlay namespace gets no answer to a ping

    @property
    def ok(self) -> bool:
        return self.running and self.listening and not self.unreachable


def check_collectors(state: LabState) -> list[CollectorProbe]:
    """Every collector: nfcapd alive and listening, its address answering every node."""
    out = []
    for c in state.collectors:
        here = netns_exists(c.ns)
        running = here and any(
            d.role == ROLE and d.name == c.name and alive(d) for d in state.daemons
        )
        hosts = [h for h in state.hosts if netns_exists(h.ns)]
        with ThreadPoolExecutor(max_workers=CHECK_PARALLEL) as pool:
            pinged = [(h.ns, c.address, 4, 2.0) for h in hosts]
            answered = list(pool.map(lambda p: _ping(*p), pinged))
        unreachable = tuple(h.node for h, ok in zip(hosts, answered, strict=True) if not ok)
        out.append(CollectorProbe(c, running, here and listening(c), unreachable))
    return out
