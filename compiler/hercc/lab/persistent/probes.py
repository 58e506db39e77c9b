"""`hercc lab check`: every source pings every overlay address of its networks.

The probes are the lab's endpoints (node@network and workloads, from the
state file) crossed within each network, IPv4 and IPv6; `check_lab` pings
them in parallel, in the order that keeps two public peers from dialling
each other at once, and retries what failed. Kept apart from status: this
sends traffic, status only reads.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hercc.diagnostics import LabError
from hercc.lab.persistent.statefile import LabState, netns_exists
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
