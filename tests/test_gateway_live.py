"""`hercc plan|apply --gateway` on a live gateway: wireguard-go and HAProxy in a namespace.

Needs root, iproute2, wireguard-go (or the kernel module) and haproxy. The
gateway lives in a namespace made here (`hg<pid>-g-gw1`, the CLI's
--netns-prefix naming) with its public address on `lo`; a tiny echo server
in the same namespace stands in for the workloads, on their tunnel
addresses (on `lo`, so no tunnel has to come up). Teardown stops only what
this run started: the HAProxy master found by this run's PID file, the
wireguard-go recorded in this run's state directory, and the processes it
spawned, by PID; then it deletes this run's namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli.views.plan import NO_CHANGES_GATEWAY
from hercc.pipeline import compile_spec
from hercc.resources.gateway_naming import GatewayNaming
from hercc.state.haproxy import UnixHaproxyCli, haproxy_master, show_proc
from hercc.sysio import procfs

pytestmark = pytest.mark.live

PID = os.getpid() % 10000
PREFIX = f"hg{PID}-"
GW = "gw1"
NAMING = GatewayNaming.of(GW, PREFIX)
NS = NAMING.netns
PUBLIC = "203.0.113.50"
TIMEOUT = 120

ECHO_SERVER = """
import socket, sys, threading
def serve(sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()
def echo(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
for where in sys.argv[1:]:
    host, port = where.rsplit(":", 1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(64)
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# one line in, its echo out, over one TCP connection kept open
ECHO_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
for line in sys.stdin:
    s.sendall(line.encode())
    got = b""
    while not got.endswith(b"\\n"):
        got += s.recv(4096)
    print(got.decode().strip(), flush=True)
"""


def live_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, WireGuard, HAProxy)"
    missing = [t for t in ("ip", "wireguard-go", "haproxy") if shutil.which(t) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    return done.stdout


class Gateway:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.keys = tmp / "keys"
        self.spec = tmp / "spec.herc"
        self.started: list[subprocess.Popen[str]] = []
        sh("ip", "netns", "add", NS)
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "-n", NS, "addr", "add", f"{PUBLIC}/32", "dev", "lo")

    def hercc(self, *argv: str) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "hercc", *argv],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    def opts(self) -> list[str]:
        return ["--gateway", GW, "--keys", str(self.keys), "--netns-prefix", PREFIX,
                "--state-dir", str(self.state)]  # fmt: skip

    def write(self, text: str) -> None:
        self.spec.write_text(text, encoding="utf-8")

    def plan(self) -> dict[str, str]:
        rc, out, err = self.hercc("plan", str(self.spec), *self.opts(), "--json")
        assert rc == 0, err
        return {c["address"]: c for c in json.loads(out)["resource_changes"]}

    def apply(self) -> str:
        rc, out, err = self.hercc("apply", str(self.spec), *self.opts())
        assert rc == 0, out + err
        return out + err

    def start(self, script: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", NS, sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.kill()
            proc.wait(timeout=10)
        master = haproxy_master(NAMING.haproxy)
        start = procfs.proc_start_time(master) if master is not None else None
        if master is not None and start is not None:
            procfs.stop(master, start)
        for pids in self.state.glob("*.wireguard-go.json"):
            for ifname, pid in procfs.read_pid_file(pids).items():
                args = procfs.cmdline(pid) or []
                if args and args[0].endswith("wireguard-go") and ifname in args:
                    procfs.kill(pid, signal.SIGTERM)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10, check=False)
        shutil.rmtree(NAMING.runtime_dir, ignore_errors=True)
        sock = Path("/var/run/wireguard", f"{NAMING.ifname}.sock")
        deadline = time.monotonic() + 5
        while sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    reason = live_reason()
    if reason is not None:
        pytest.skip(reason)
    if Path("/run/netns", NS).exists() or NAMING.runtime_dir.exists():
        pytest.skip(f"names of this run ({NS}, {NAMING.runtime_dir}) are in use")
    env = Gateway(tmp_path)
    try:
        yield env
    finally:
        env.close()


def spec_text(*, port: int = 8080, extra_expose: bool = False, services: bool = True) -> str:
    parts = [
        "network prod {\n  range 10.20.0.0/16\n}\n",
        "node alpha {\n  network  prod\n  endpoint 192.0.2.10\n}\n",
        "node beta {\n  network  prod\n  endpoint 192.0.2.11\n}\n",
        "workload web { node alpha }\n",
        "workload web2 { node beta }\n",
        "workload db { node alpha }\n",
        f"gateway {GW} {{ address {PUBLIC} }}\n",
    ]
    if services:
        parts.append(
            f"service shop {{\n  workload web, web2\n  port     {port}\n"
            f"  expose   tcp 18080 via {GW}\n}}\n"
        )
        reports = (
            "service reports {\n  workload db\n  port     5432\n  expose   tcp 15432 via gw1\n"
        )
        if extra_expose:
            reports += "  expose   tcp 15433 via gw1\n"
        parts.append(reports + "}\n")
    return "\n".join(parts)


def listening(port: int) -> bool:
    return f"{PUBLIC}:{port} " in sh("ip", "netns", "exec", NS, "ss", "-Hltn")


def workers() -> frozenset[int]:
    return show_proc(UnixHaproxyCli(), NAMING.haproxy).workers


def say(client: subprocess.Popen[str], line: str) -> str:
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(line + "\n")
    client.stdin.flush()
    return client.stdout.readline().strip()


def test_gateway_apply_runtime_update_reload_and_delete(gateway: Gateway) -> None:
    env = gateway
    env.write(spec_text())
    rc, _, err = env.hercc("keys", "init", str(env.spec), "--keys", str(env.keys))
    assert rc == 0, err
    ir = compile_spec(str(env.spec), keys_dir=str(env.keys)).ir
    addresses = sorted({f.tunnel_address for t in ir.gateways[0].tunnels for f in t.forwards})
    for address in addresses:  # the workloads' tunnel addresses, served here
        sh("ip", "-n", NS, "addr", "add", f"{address}/32", "dev", "lo")
    server = env.start(ECHO_SERVER, *(f"{a}:{p}" for a in addresses for p in (8080, 8081, 5432)))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    # a new gateway: its interface, address, a peer per node, and HAProxy
    first = env.plan()
    kinds = sorted(address.split(".", 1)[0] for address in first)
    assert kinds == ["address", "haproxy", "peer", "peer", "wireguard"]
    env.apply()
    assert listening(18080) and listening(15432)
    rc, out, _ = env.hercc("plan", str(env.spec), *env.opts(), "--detailed-exitcode")
    assert rc == 0 and NO_CHANGES_GATEWAY in out
    master = haproxy_master(NAMING.haproxy)
    assert master is not None
    sh("haproxy", "-c", "-q", "-f", str(NAMING.haproxy.config))

    client = env.start(ECHO_CLIENT, PUBLIC, "18080")
    assert say(client, "hello") == "hello"

    # a backend's port only: an update of `servers`, through the runtime API
    before = workers()
    env.write(spec_text(port=8081))
    plan = env.plan()
    assert list(plan) == [f"haproxy.{NS}/{GW}"]
    assert plan[f"haproxy.{NS}/{GW}"]["changed"] == ["servers"]
    env.apply()
    assert workers() == before  # no reload: the same worker
    assert env.plan() == {}
    assert say(client, "still there") == "still there"

    # something else (a new public port): a reload that keeps the open connection,
    # from a saved plan, which knows it is a gateway's and what HAProxy runs
    env.write(spec_text(port=8081, extra_expose=True))
    plan = env.plan()
    assert plan[f"haproxy.{NS}/{GW}"]["changed"] == ["config"]
    saved = env.tmp / "reload.plan"
    rc, _, err = env.hercc("plan", str(env.spec), *env.opts(), "-o", str(saved))
    assert rc == 0, err
    env.write(spec_text())  # the spec changes: the saved plan is applied as it was made
    rest = env.opts()[2:]  # no --gateway: the plan says
    rc, out, err = env.hercc("apply", str(saved), *rest)
    assert rc == 0, out + err
    rc, _, err = env.hercc("apply", str(saved), *rest)
    assert rc == 1 and "gateway gw1 changed since this plan was made" in err
    env.write(spec_text(port=8081, extra_expose=True))
    assert workers().isdisjoint(before)
    assert haproxy_master(NAMING.haproxy) == master
    assert listening(15433)
    assert say(client, "after the reload") == "after the reload"
    assert env.plan() == {}
    second = env.start(ECHO_CLIENT, PUBLIC, "15433")
    assert say(second, "new port") == "new port"
    for proc in (client, second):
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)

    # no services: the peers go, HAProxy serves nothing but its metrics
    env.write(spec_text(services=False))
    plan = env.plan()
    assert sorted(c["action"] for c in plan.values()) == ["delete", "delete", "update"]
    env.apply()
    assert not listening(18080)
    assert env.plan() == {}

    # deleted (the plan of an empty desired state): nothing of ours is left running
    wireguard_go = [
        pid
        for f in env.state.glob("*.wireguard-go.json")
        for pid in procfs.read_pid_file(f).values()
    ]
    code = f"""
import sys
from hercc.plan.gateway_desired import GatewayKeys
from hercc.plan.gateway_service import GatewayContext, apply_gateway, plan_gateway
from hercc.plan.node_service import live_system
from hercc.resources.gateway_naming import GatewayNaming
ctx = GatewayContext.of(GatewayNaming.of({GW!r}, {PREFIX!r}), GatewayKeys({str(env.keys)!r}),
                        {str(env.state)!r}, live_system())
plan = plan_gateway(ctx, {{}}).plan
apply_gateway(ctx, plan)
print(plan.counts())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(0, 0, 3)"
    assert procfs.cmdline(master) is None
    assert not NAMING.runtime_dir.exists()
    assert wireguard_go and all(procfs.cmdline(pid) is None for pid in wireguard_go)
    assert not Path("/var/run/wireguard", f"{NAMING.ifname}.sock").exists()


HOST_SCRIPT = """
set -e
ip link set lo up
ip addr add {public}/32 dev lo
for a in {addresses}; do ip addr add $a/32 dev lo; done
hercc() {{ {python} -m hercc "$@"; }}
hercc apply {spec} --gateway {gw} --keys {keys} --state-dir {state} >/dev/null 2>&1
hercc plan {spec} --gateway {gw} --keys {keys} --state-dir {state} --detailed-exitcode
ip -o link show hercgw
ss -Hltn
{python} {delete}
ss -Hltn
"""

DELETE = """
from hercc.plan.gateway_desired import GatewayKeys
from hercc.plan.gateway_service import GatewayContext, apply_gateway, plan_gateway
from hercc.plan.node_service import live_system
from hercc.resources.gateway_naming import GatewayNaming
ctx = GatewayContext.of(GatewayNaming.of({gw!r}), GatewayKeys({keys!r}), {state!r}, live_system())
apply_gateway(ctx, plan_gateway(ctx, {{}}).plan)
print("deleted")
"""


def test_a_gateway_in_the_hosts_own_namespace(tmp_path: Path) -> None:
    """Without --netns-prefix a gateway lives in the host's namespace ("(host)"): here the
    host is a fresh network namespace of `unshare --net`, so nothing of this machine is touched."""
    reason = live_reason() or (None if shutil.which("unshare") else "no unshare")
    if reason is not None:
        pytest.skip(reason)
    gw = f"h{PID}"
    naming = GatewayNaming.of(gw)
    if naming.runtime_dir.exists() or Path("/var/run/wireguard/hercgw.sock").exists():
        pytest.skip(f"{naming.runtime_dir} or the interface hercgw is in use")
    spec, keys, state = tmp_path / "spec.herc", tmp_path / "keys", tmp_path / "state"
    spec.write_text(spec_text().replace(f"gateway {GW}", f"gateway {gw}").replace("gw1", gw))
    subprocess.run(
        [sys.executable, "-m", "hercc", "keys", "init", str(spec), "--keys", str(keys)],
        check=True,
        capture_output=True,
    )
    model = compile_spec(str(spec), keys_dir=str(keys)).ir
    addresses = sorted({f.tunnel_address for t in model.gateways[0].tunnels for f in t.forwards})
    delete = tmp_path / "delete.py"
    delete.write_text(DELETE.format(gw=gw, keys=str(keys), state=str(state)))
    script = HOST_SCRIPT.format(
        public=PUBLIC,
        addresses=" ".join(addresses),
        python=sys.executable,
        spec=spec,
        gw=gw,
        keys=keys,
        state=state,
        delete=delete,
    )
    try:
        done = subprocess.run(
            ["unshare", "--net", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:  # whatever is left of this run, by PID
        master = haproxy_master(naming.haproxy)
        start = procfs.proc_start_time(master) if master is not None else None
        if master is not None and start is not None:
            procfs.stop(master, start)
        for pids in state.glob("*.wireguard-go.json"):
            for pid in procfs.read_pid_file(pids).values():
                args = procfs.cmdline(pid) or []
                if args and args[0].endswith("wireguard-go") and "hercgw" in args:
                    procfs.kill(pid, signal.SIGTERM)
        shutil.rmtree(naming.runtime_dir, ignore_errors=True)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert NO_CHANGES_GATEWAY in out
    assert "hercgw:" in out and "alias hercules:gateway:" + gw in out
    before, after = out.split("deleted")
    assert f"{PUBLIC}:18080" in before and f"{PUBLIC}:18080" not in after
    assert not naming.runtime_dir.exists()
