"""`hercc plan` / `hercc apply` on a live node: namespaces, wireguard-go, veths, routes.

Needs root, iproute2, sysctl and wireguard-go (or the kernel module). Every
name is unique to this run: namespaces start with `ht<pid>-` (--netns-prefix),
the networks are named after the pid (so are the WireGuard interfaces and
their UAPI sockets), and wireguard-go runs in an underlay namespace made here
with nothing but `lo`, so no packet leaves the machine. Teardown kills only
the wireguard-go processes recorded in this run's state directory and deletes
only this run's namespaces.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli.views.plan import NO_CHANGES
from hercc.resources.naming import Naming
from hercc.state.exporter_proc import exporter_of
from hercc.state.probes import probe_of
from hercc.sysio import procfs

pytestmark = pytest.mark.live

PID = os.getpid() % 10000
PREFIX = f"ht{PID}-"
NET = f"t{PID}"
BIG = f"b{PID}"
WG = f"wg-{NET}"
WG_BIG = f"wg-{BIG}"
TIMEOUT = 120


def live_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, WireGuard)"
    missing = [t for t in ("ip", "sysctl", "wireguard-go", "wg") if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    return None


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    return done.stdout


class Node:
    """One run's working directory, state directory, underlay namespace and CLI."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.keys = tmp / "keys"
        self.underlay = f"{PREFIX}ul"
        sh("ip", "netns", "add", self.underlay)
        sh("ip", "-n", self.underlay, "link", "set", "lo", "up")

    def hercc(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "hercc", *argv],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, **(env or {})},
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    def opts(self) -> list[str]:
        return ["--keys", str(self.keys), "--netns-prefix", PREFIX, "--state-dir", str(self.state)]

    def plan(self, spec: Path, *extra: str, node: str = "a") -> tuple[int, str, str]:
        return self.hercc("plan", str(spec), "--node", node, *self.opts(), *extra)

    def plan_json(self, spec: Path, node: str = "a") -> dict[str, object]:
        rc, out, err = self.plan(spec, "--json", node=node)
        assert rc == 0, err
        data: dict[str, object] = json.loads(out)
        return data

    def apply(
        self, target: Path, *extra: str, node: str | None = "a", env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        argv = ["apply", str(target), *(["--node", node] if node else [])]
        argv += [*self.opts(), "--underlay-netns", self.underlay, *extra]
        return self.hercc(*argv, env=env)

    def apply_argv(self, target: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hercc",
            "apply",
            str(target),
            "--node",
            "a",
            *self.opts(),
            "--underlay-netns",
            self.underlay,
            *extra,
        ]

    def close(self) -> None:
        for pids in self.state.glob("*.wireguard-go.json"):
            with contextlib.suppress(OSError, ValueError):
                for ifname, pid in json.loads(pids.read_text()).items():
                    if _is_wireguard_go(pid, ifname):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
        for pids in self.state.glob("*.probes.json"):  # the gateway tunnels' pings
            for pid in procfs.read_pid_file(pids).values():
                start = procfs.proc_start_time(pid)
                if start is not None and probe_of(procfs.cmdline(pid) or []) is not None:
                    procfs.stop(pid, start)
        for pids in self.state.glob("*.exporter.json"):  # the flow exporters
            for pid in procfs.read_pid_file(pids).values():
                start = procfs.proc_start_time(pid)
                if start is not None and exporter_of(procfs.cmdline(pid) or []) is not None:
                    procfs.stop(pid, start, timeout=10)
        deadline = time.monotonic() + 5
        for ns in sorted(p.name for p in Path("/run/netns").glob(f"{PREFIX}*")):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
        for ifname in (WG, WG_BIG):
            sock = Path("/var/run/wireguard", f"{ifname}.sock")
            while sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()


def _is_wireguard_go(pid: int, ifname: str) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return args[0].endswith(b"wireguard-go") and ifname.encode() in args


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    reason = live_reason()
    if reason is not None:
        pytest.skip(reason)
    if any(Path("/run/netns").glob(f"{PREFIX}*")) or Path(f"/var/run/wireguard/{WG}.sock").exists():
        pytest.skip(f"names of this run ({PREFIX}*, {WG}) are in use")
    env = Node(tmp_path)
    try:
        yield env
    finally:
        env.close()


# --------------------------------------------------------------------------- specs


def spec_text(
    *, port: int = 51820, node_d: bool = False, workloads: tuple[str, ...] = ("web",)
) -> str:
    parts = [
        f"network {NET} {{\n  range  10.77.0.0/16\n  range6 fd77::/48\n  port   {port}\n}}\n",
        f"node a {{\n  network  {NET}\n  endpoint 10.255.7.1\n}}\n",
        f"node b {{\n  network  {NET}\n  endpoint 10.255.7.2:51820\n}}\n",
        f"node c {{\n  network {NET}\n  nat\n}}\n",
    ]
    if node_d:
        parts.append(f"node d {{\n  network  {NET}\n  endpoint 10.255.7.4:51820\n}}\n")
    parts += [f"workload {w} {{\n  node a\n}}\n" for w in workloads]
    return "\n".join(parts)


def write_spec(env: Node, name: str, text: str) -> Path:
    path = env.tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def keys_init(env: Node, spec: Path) -> None:
    rc, _, err = env.hercc("keys", "init", str(spec), "--keys", str(env.keys))
    assert rc == 0, err


def changes(plan: dict[str, object]) -> dict[str, str]:
    items = plan["resource_changes"]
    assert isinstance(items, list)
    return {c["address"]: c["action"] for c in items}


def kinds(plan: dict[str, object]) -> dict[str, int]:
    out: dict[str, int] = {}
    for address in changes(plan):
        kind = address.split(".", 1)[0]
        out[kind] = out.get(kind, 0) + 1
    return out


def fingerprint_of(env: Node, spec: Path) -> str:
    """The live fingerprint of node a (what a saved plan records)."""
    path = env.tmp / f"fp-{time.monotonic_ns()}.json"
    rc, _, err = env.plan(spec, "-o", str(path))
    assert rc == 0, err
    value: str = json.loads(path.read_text())["live_fingerprint"]
    return value


# --------------------------------------------------------------------------- the tests


def test_plan_apply_change_rollback_confirm(node: Node) -> None:
    env = node
    spec1 = write_spec(env, "one.herc", spec_text())
    keys_init(env, spec1)
    ns = f"{PREFIX}herc-{NET}"
    wns = f"{PREFIX}herc-w-web"

    # 1. everything to create
    plan = env.plan_json(spec1)
    assert set(changes(plan).values()) == {"create"}
    assert kinds(plan) == {
        "netns": 2,
        "sysctl": 2,
        "wireguard": 1,
        "veth": 1,
        "address": 5,
        "route": 4,
        "peer": 2,
    }
    assert plan["summary"] == {"add": 17, "change": 0, "destroy": 0}
    rc, out, err = env.plan(spec1, "--detailed-exitcode")
    assert rc == 2, err
    assert "Plan: 17 to add, 0 to change, 0 to destroy." in out
    assert f"  + wireguard.{ns}/{WG}" in out and "private_key = (sensitive)" in out
    keyfile = (env.keys / "a.key").read_text().strip()
    assert keyfile not in out + err

    # 2. apply, then nothing left to do
    rc, out, err = env.apply(spec1)
    assert rc == 0, err
    assert "Apply complete: 17 added, 0 changed, 0 destroyed." in err
    assert keyfile not in out + err
    rc, out, err = env.plan(spec1, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err
    assert WG in sh("ip", "-n", ns, "link", "show")
    assert "51820" in sh("ip", "netns", "exec", env.underlay, "ss", "-Hlun")
    assert sh("ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
    sh("ip", "netns", "exec", wns, "ping", "-c", "1", "-W", "2", "10.77.0.1")

    # ownership: an unrelated interface next to ours is never reported or touched
    sh("ip", "-n", ns, "link", "add", f"{PREFIX}x0", "type", "veth", "peer", "name", f"{PREFIX}x1")
    rc, out, err = env.plan(spec1, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err
    assert f"{PREFIX}x0" not in out + err

    # 3. a new node (one peer), a new port (~ listen_port), a workload removed
    spec2 = write_spec(env, "two.herc", spec_text(port=51999, node_d=True, workloads=()))
    keys_init(env, spec2)
    plan = env.plan_json(spec2)
    got = changes(plan)
    added = [a for a, act in got.items() if act == "create"]
    assert len(added) == 1 and added[0].startswith(f"peer.{ns}/{WG}/")
    assert [a for a, act in got.items() if act == "update"] == [f"wireguard.{ns}/{WG}"]
    items = plan["resource_changes"]
    assert isinstance(items, list)
    assert next(c for c in items if c["action"] == "update")["changed"] == ["listen_port"]
    destroyed = sorted(a for a, act in got.items() if act == "delete")
    assert destroyed == sorted(
        [
            f"netns.{wns}",
            f"veth.{ns}/hv-web",
            f"sysctl.{ns}/net.ipv4.ip_forward",
            f"sysctl.{ns}/net.ipv6.conf.all.forwarding",
            f"address.{ns}/hv-web/fe80::1/64",  # added by hand: read like any address
            f"address.{wns}/eth0/10.77.0.2/32",
            f"address.{wns}/eth0/fd77::2/128",
            f"route.{wns}/0.0.0.0/0",
            f"route.{wns}/::/0",
            f"route.{ns}/10.77.0.2/32",
            f"route.{ns}/fd77::2/128",
        ]
    )
    assert plan["summary"] == {"add": 1, "change": 1, "destroy": 11}
    rc, out, err = env.plan(spec2)
    assert f"  ~ wireguard.{ns}/{WG}" in out and "listen_port = 51820 -> 51999" in out
    assert f"  - netns.{wns}" in out and f"  + peer.{ns}/{WG}/" in out
    assert "Plan: 1 to add, 1 to change, 11 to destroy." in out

    saved = env.tmp / "two.plan.json"
    rc, _, err = env.plan(spec2, "-o", str(saved))
    assert rc == 0, err
    rc, _, err = env.apply(saved, node="b")
    assert rc == 1 and "was made for node a, not b" in err
    rc, _, err = env.apply(saved, node=None)
    assert rc == 0, err
    rc, out, err = env.plan(spec2, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err
    assert not Path("/run/netns", wns).exists()
    assert "51999" in sh("ip", "netns", "exec", env.underlay, "ss", "-Hlun")
    assert f"{PREFIX}x0" in sh("ip", "-n", ns, "link", "show")  # untouched

    # 4. a failure half-way through going back: everything rolled back
    before_text = env.plan(spec1)[1]
    before_fp = fingerprint_of(env, spec1)
    steps = list(changes(env.plan_json(spec1)))
    assert len(steps) == 13  # 1 peer to remove, 1 port, 11 to create
    fail_at = steps[len(steps) // 2 + 2]
    rc, _, err = env.apply(spec1, env={"HERCC_FAIL_AT": fail_at})
    assert rc == 1 and "rolled back" in err and "injected failure" in err, err
    assert "rollback was incomplete" not in err
    assert fingerprint_of(env, spec1) == before_fp
    assert env.plan(spec1)[1] == before_text

    # 5. a saved plan is refused once the node changed under it
    stale = env.tmp / "stale.plan.json"
    rc, _, err = env.plan(spec1, "-o", str(stale))
    assert rc == 0, err
    sh("ip", "netns", "exec", ns, "wg", "set", WG, "listen-port", "40001")
    rc, _, err = env.apply(stale, node=None)
    assert rc == 1 and "changed since this plan was made" in err, err
    rc, out, err = env.apply(spec2)  # put the port back
    assert rc == 0, err
    assert env.plan(spec1)[1] == before_text

    # 6. a confirm window without a confirmation: reverted
    start = time.monotonic()
    rc, _, err = env.apply(spec1, "--confirm-timeout", "2")
    assert rc == 1 and "reverted" in err, err
    assert time.monotonic() - start < 60
    assert env.plan(spec1)[1] == before_text
    assert fingerprint_of(env, spec1) == before_fp

    # ... and with one: kept
    proc = subprocess.Popen(
        env.apply_argv(spec1, "--confirm-timeout", "30"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    waiting = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("waiting"):
                waiting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert waiting.wait(60), "".join(lines)
        rc, _, err = env.hercc("apply", "--confirm", "--node", "a", "--state-dir", str(env.state))
        assert rc == 0, err
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    reader.join(10)
    assert any("confirmed" in line for line in lines), "".join(lines)
    rc, out, err = env.plan(spec1, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err

    # 7. a name the plan would create, taken by an interface that is not ours
    taken = Naming().veth_host("api")
    sh("ip", "-n", ns, "link", "add", taken, "type", "veth", "peer", "name", f"{PREFIX}y1")
    spec3 = write_spec(env, "three.herc", spec_text(workloads=("web", "api")))
    rc, out, err = env.plan(spec3)
    assert rc == 1 and f"interface {taken} exists" in err and "is not Hercules'" in err, err
    assert "Traceback" not in err
    sh("ip", "-n", ns, "link", "del", taken)
    rc, out, err = env.plan(spec3, "--detailed-exitcode")
    assert rc == 2, err
    assert f"{PREFIX}x0" in sh("ip", "-n", ns, "link", "show")


def test_refusals_are_clear(node: Node) -> None:
    env = node
    spec = write_spec(env, "one.herc", spec_text())
    keys_init(env, spec)
    ns = f"{PREFIX}herc-{NET}"
    sh("ip", "netns", "add", ns)  # exists, not in our registry
    rc, _, err = env.plan(spec)
    assert rc == 1 and f"namespace {ns} exists and is not Hercules'" in err, err
    rc, _, err = env.plan(spec, node="nobody")
    assert rc == 1 and "node nobody is not in the spec" in err, err
    assert "Traceback" not in err


def test_failed_first_apply_leaves_nothing(node: Node) -> None:
    env = node
    spec = write_spec(env, "one.herc", spec_text())
    keys_init(env, spec)
    last = list(changes(env.plan_json(spec)))[-1]
    rc, _, err = env.apply(spec, env={"HERCC_FAIL_AT": last})
    assert rc == 1 and "the node is back as it was" in err, err
    assert not list(Path("/run/netns").glob(f"{PREFIX}herc-*"))
    assert not Path(f"/var/run/wireguard/{WG}.sock").exists()
    assert json.loads((env.state / "a.wireguard-go.json").read_text()) == {}
    rc, out, err = env.plan(spec, "--detailed-exitcode")
    assert rc == 2 and "Plan: 17 to add, 0 to change, 0 to destroy." in out, err


def _big_spec(n: int) -> str:
    parts = [
        f"network {BIG} {{\n  range 10.64.0.0/10\n  range6 fd64::/48\n  subnets /28\n}}\n",
        f"node hub {{\n  network {BIG}\n  endpoint 10.255.0.1:51820\n}}\n",
    ]
    for i in range(n):
        key = base64.b64encode(os.urandom(32)).decode()
        parts.append(
            f"node n{i} {{\n  network {BIG}\n  endpoint 10.200.{i // 250}.{i % 250 + 1}:51820\n"
            f'  pubkey "{key}"\n}}\n'
        )
    return "\n".join(parts)


def test_thousand_peers(node: Node) -> None:
    env = node
    spec = write_spec(env, "big.herc", _big_spec(1000))
    keys_init(env, spec)
    start = time.monotonic()
    rc, out, err = env.plan(spec, "--detailed-exitcode", node="hub")
    first = time.monotonic() - start
    assert rc == 2, err
    assert sum(line.startswith("  + peer.") for line in out.splitlines()) == 1000
    assert sum(line.startswith("  + ") for line in out.splitlines()) == 1004  # netns, wg, 2 addr
    start = time.monotonic()
    rc, _, err = env.apply(spec, node="hub")
    applied = time.monotonic() - start
    assert rc == 0, err
    start = time.monotonic()
    rc, out, err = env.plan(spec, "--detailed-exitcode", node="hub")
    again = time.monotonic() - start
    assert (rc, out) == (0, NO_CHANGES + "\n"), err
    print(
        f"1,000-peer node: plan {first:.2f} s (empty node), apply {applied:.2f} s, "
        f"plan against the live node {again:.2f} s"
    )
    assert again < 60
