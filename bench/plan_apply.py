"""Benchmark: `hercc plan` / `hercc apply` of a 1,000-peer node, and `hercc lab up`.

A spec of 1,001 nodes: a hub and 1,000 nodes with pinned public keys, all
peers of the hub. Measured on this machine, in one run, each as a child
process (wall time and peak RSS, bench/runner.measure), against its target:

    plan, empty node (1,000 peers to create)     < 1 s
    apply from empty (1,000 peers)               < 3 s
    plan, hub already applied ("No changes.")    < 1 s
    apply with nothing to change                 < 1 s
    lab up examples/reference.herc               < 10 s   (then lab down)

Needs root, iproute2, wireguard-go (or the kernel module) and wg. Every name
is unique to the run: namespaces start with `hb<pid>-` (--netns-prefix), the
network (and so the WireGuard interface and its UAPI socket) is `hb<pid>`, the
state and keys directories are temporary, and wireguard-go runs in an underlay
namespace made here with nothing but `lo`, so no packet leaves the machine.
Whatever happens, the end removes this run's namespaces, stops only the
wireguard-go processes this run can attribute to itself (recorded in its state
directory, or holding its interface's socket) and takes its lab down. Every
child runs under timeout(1), so no wait is unbounded.

    python bench/plan_apply.py [--peers 1000] [--timeout 120]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meshgen import key_pair
from runner import hercc, measure

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "examples" / "reference.herc"
RUN = os.getpid() % 10000
PREFIX = f"hb{RUN}-"  # every namespace of the plan/apply part
NET = f"hb{RUN}"
WG = f"wg-{NET}"  # hercc's WireGuard interface name for network NET
LAB = f"hb{RUN}-bench"
UNDERLAY = f"{PREFIX}ul"
SOCKETS = Path("/var/run/wireguard")
LAB_DIR = Path(os.environ.get("HERCULES_LAB_DIR", "/var/lib/hercules/labs"))
NO_CHANGES = "No changes."

TARGETS = {
    "plan, empty node": 1.0,
    "apply from empty": 3.0,
    "plan, no changes": 1.0,
    "apply, no-op": 1.0,
    "lab up reference.herc": 10.0,
}


def spec_text(peers: int) -> str:
    parts = [
        f"network {NET} {{\n  range  10.64.0.0/10\n  range6 fd64::/48\n  subnets /28\n}}\n",
        f"node hub {{\n  network  {NET}\n  endpoint 10.255.0.1:51820\n}}\n",
    ]
    for i in range(peers):
        _, public = key_pair(f"hercules-bench-plan-{i}")
        parts.append(
            f"node n{i:04d} {{\n  network  {NET}\n"
            f'  endpoint 10.200.{i // 250}.{i % 250 + 1}:51820\n  pubkey   "{public}"\n}}\n'
        )
    return "\n".join(parts)


def sh(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def must(*argv: str, timeout: float = 60) -> str:
    done = sh(*argv, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}... failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def preflight() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, WireGuard)")
    missing = [t for t in ("ip", "wg", "wireguard-go", "timeout") if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)}")
    taken = [p.name for p in Path("/run/netns").glob(f"{PREFIX}*")]
    if taken or (SOCKETS / f"{WG}.sock").exists() or (LAB_DIR / f"{LAB}.json").exists():
        sys.exit(f"names of this run ({PREFIX}*, {WG}, lab {LAB}) are in use; run again")


class Bench:
    def __init__(self, tmp: Path, limit: float) -> None:
        self.tmp = tmp
        self.limit = limit
        self.state = tmp / "state"
        self.keys = tmp / "keys"
        self.lab_tried = False
        self.lab_down_s: float | None = None
        self.rows: list[tuple[str, float, float]] = []

    def opts(self) -> list[str]:
        return ["--keys", str(self.keys), "--netns-prefix", PREFIX, "--state-dir", str(self.state)]

    def bounded(self, argv: list[str]) -> list[str]:
        return ["timeout", "-k", "5", str(self.limit), *argv]

    def timed(self, label: str, argv: list[str]) -> None:
        """One measured child; timeout(1) waits for it, so its peak RSS is reported."""
        try:
            wall, rss = measure(self.bounded(argv), cwd=str(ROOT))
        except SystemExit as exc:
            raise SystemExit(f"{label}: {exc}") from None
        self.rows.append((label, wall, rss))

    def check(self, argv: list[str], want_rc: int, what: str) -> str:
        """An unmeasured run that confirms the node is where the figure says it is."""
        done = sh(*self.bounded(argv), timeout=self.limit + 10)
        if done.returncode != want_rc:
            sys.exit(f"{what}: exit {done.returncode}, expected {want_rc}: {done.stderr[-2000:]}")
        return done.stdout

    def run(self, peers: int) -> None:
        spec = self.tmp / "hub.herc"
        spec.write_text(spec_text(peers), encoding="utf-8")
        must("ip", "netns", "add", UNDERLAY)
        must("ip", "-n", UNDERLAY, "link", "set", "lo", "up")
        must(*hercc(), "keys", "init", str(spec), "--keys", str(self.keys), timeout=self.limit)
        plan = [*hercc(), "plan", str(spec), "--node", "hub", *self.opts()]
        apply = [*hercc(), "apply", str(spec), "--node", "hub", *self.opts()]
        apply += ["--underlay-netns", UNDERLAY]

        self.timed("plan, empty node", plan)
        out = self.check([*plan, "--detailed-exitcode"], 2, "plan of the empty node")
        created = sum(line.startswith("  + peer.") for line in out.splitlines())
        if created != peers:
            sys.exit(f"the plan of the empty node creates {created} peers, not {peers}")

        self.timed("apply from empty", apply)
        out = self.check([*plan, "--detailed-exitcode"], 0, "plan after the apply")
        if not out.startswith(NO_CHANGES):
            sys.exit(f"plan after the apply: {out[:200]!r}")
        dump = must("ip", "netns", "exec", f"{PREFIX}herc-{NET}", "wg", "show", WG, "peers")
        if len(dump.split()) != peers:
            sys.exit(f"{WG} has {len(dump.split())} peers, not {peers}")

        self.timed("plan, no changes", plan)
        self.timed("apply, no-op", apply)
        out = self.check(apply, 0, "no-op apply")
        if not out.startswith(NO_CHANGES):
            sys.exit(f"the no-op apply was not one: {out[:200]!r}")

        self.lab_tried = True
        self.timed("lab up reference.herc", [*hercc(), "lab", "up", str(REFERENCE), "--name", LAB])
        start = time.perf_counter()
        self.lab_down()
        self.lab_down_s = time.perf_counter() - start

    def lab_down(self) -> None:
        if not self.lab_tried:
            return
        self.lab_tried = False
        done = sh(*self.bounded([*hercc(), "lab", "down", "--name", LAB]), timeout=self.limit + 10)
        if done.returncode != 0:
            print(f"warning: hercc lab down --name {LAB}: {done.stderr.strip()[-500:]}")

    def close(self) -> None:
        """Remove what this run made, and only that; every wait is bounded."""
        with contextlib.suppress(Exception):
            self.lab_down()
        for pid in our_wireguard_go(self.state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while is_wireguard_go(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if is_wireguard_go(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for ns in sorted(p.name for p in Path("/run/netns").glob(f"{PREFIX}*")):
            done = sh("ip", "netns", "del", ns, timeout=10)
            if done.returncode != 0:
                print(f"warning: ip netns del {ns}: {done.stderr.strip()}")
        sock = SOCKETS / f"{WG}.sock"
        deadline = time.monotonic() + 5
        while sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if sock.exists() and not socket_owners(WG):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        leftovers = [p.name for p in Path("/run/netns").glob(f"{PREFIX}*")]
        if leftovers or sock.exists() or (LAB_DIR / f"{LAB}.json").exists():
            print(f"warning: left behind: {leftovers}, {sock.exists()=}, lab {LAB}")


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return []


def is_wireguard_go(pid: int, ifname: str = WG) -> bool:
    args = cmdline(pid)
    return (
        bool(args) and os.path.basename(args[0]) == b"wireguard-go" and args[-1] == ifname.encode()
    )


def socket_owners(ifname: str) -> list[int]:
    """wireguard-go processes named after `ifname` that hold its UAPI socket open."""
    path = str(SOCKETS / f"{ifname}.sock")
    owners: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not is_wireguard_go(int(entry.name), ifname):
            continue
        try:  # the socket lives in the process's network namespace: read its own view
            rows = (entry / "net" / "unix").read_text().splitlines()[1:]
            inodes = {f"socket:[{r.split()[6]}]" for r in rows if r.split()[-1] == path}
            fds = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except (OSError, IndexError):
            continue
        if inodes & fds:
            owners.append(int(entry.name))
    return owners


def our_wireguard_go(state: Path) -> list[int]:
    """The wireguard-go pids the applies of this run recorded, and the owners of WG's socket."""
    pids: set[int] = set()
    for record in state.glob("*.wireguard-go.json"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            for ifname, pid in json.loads(record.read_text()).items():
                if isinstance(pid, int) and is_wireguard_go(pid, ifname):
                    pids.add(pid)
    pids.update(socket_owners(WG))
    return sorted(pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per child process")
    args = parser.parse_args()
    preflight()
    with tempfile.TemporaryDirectory(prefix="hercc-bench-") as tmp:
        bench = Bench(Path(tmp), args.timeout)
        failure: SystemExit | None = None
        try:
            bench.run(args.peers)
        except SystemExit as exc:
            failure = exc
        finally:
            bench.close()
    report(bench, args.peers)
    if failure is not None:
        raise failure


def report(bench: Bench, peers: int) -> None:
    print(f"hub node with {peers} peers ({peers + 1}-node spec); prefix {PREFIX}")
    print(f"{'figure':<24} {'wall s':>7} {'peak RSS MiB':>13} {'target s':>9} "
          f"{'ratio':>6}  result")  # fmt: skip
    for label, wall, rss in bench.rows:
        target = TARGETS[label]
        ratio = wall / target
        verdict = "met" if wall < target else "NOT met"
        print(f"{label:<24} {wall:>7.2f} {rss:>13.1f} {target:>9.1f} {ratio:>6.2f}  {verdict}")
    print("ratio = wall / target (below 1.00 meets the target)")
    if bench.lab_down_s is not None:
        print(f"lab down (not a target): {bench.lab_down_s:.2f} s")


if __name__ == "__main__":
    main()
