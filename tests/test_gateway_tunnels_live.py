"""A node's end of its gateway tunnels, planned and applied live, and a packet through it.

The fixtures are tests/test_apply_live.py's (a per-run prefix, an underlay
namespace with nothing but `lo`). The gateway is named after the pid, so its
tunnel interface and wireguard-go socket are this run's. For the packet test
a fake gateway runs here: its own wireguard-go, with the gateway's key from
the keys directory, on the underlay at the gateway's address (on `lo`), its
interface in a namespace of its own, configured by `wg set`. It proves that
the node lets in exactly the exposed (workload, port) from the gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli.views.plan import NO_CHANGES
from hercc.state.probes import INTERVAL_S, probe_of, probe_pid_file
from hercc.sysio import procfs
from tests.test_apply_live import (
    NET,
    PID,
    PREFIX,
    Node,
    changes,
    keys_init,
    live_reason,
    sh,
    write_spec,
)

pytestmark = pytest.mark.live

GW = f"g{PID}"
IF = f"gw-{GW}"  # Naming().gw_ifname(GW)
NS = f"{PREFIX}herc-{NET}"
WEB_NS = f"{PREFIX}herc-w-web"
GW_ADDRESS = "10.255.9.1"
TABLE = f"nft.{NS}/inet/hercules-gateways"
PROBE = f"probe.{NS}/{IF}"


def spec_text(*, service: bool = True) -> str:
    parts = [
        f"network {NET} {{\n  range 10.77.0.0/16\n}}\n",
        f"node a {{\n  network  {NET}\n  endpoint 10.255.7.1\n}}\n",
        f"node b {{\n  network  {NET}\n  endpoint 10.255.7.2:51820\n}}\n",
        "workload web {\n  node    a\n  address 10.77.0.20\n}\n",
        "workload other {\n  node    a\n  address 10.77.0.21\n}\n",
        f"gateway {GW} {{\n  address {GW_ADDRESS}\n  listen  443\n  tunnel  7443\n}}\n",
    ]
    if service:
        parts.append(
            f"service shop {{\n  workload web\n  port     8080\n  expose   tcp 18080 via {GW}\n}}\n"
        )
    return "\n".join(parts)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    reason = live_reason()
    if reason is not None:
        pytest.skip(reason)
    if any(Path("/run/netns").glob(f"{PREFIX}*")) or Path(f"/var/run/wireguard/{IF}.sock").exists():
        pytest.skip(f"names of this run ({PREFIX}*, {IF}) are in use")
    env = Node(tmp_path)
    try:
        yield env
    finally:
        env.close()
        with contextlib.suppress(FileNotFoundError):
            Path(f"/var/run/wireguard/{IF}.sock").unlink()


def probe_pid(env: Node) -> int:
    """The PID of the tunnel's probe, as the executor recorded it (alive)."""
    pid = json.loads(probe_pid_file(env.state, "a").read_text())[f"{NS}/{IF}"]
    assert isinstance(pid, int) and procfs.proc_start_time(pid) is not None
    return pid


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while procfs.proc_start_time(pid) is not None and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    assert procfs.proc_start_time(pid) is None


def nft_json(ns: str) -> list[dict[str, object]]:
    out = json.loads(sh("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"))["nftables"]
    assert isinstance(out, list)
    return out


def test_tunnel_plan_apply_repair_and_remove(node: Node) -> None:
    env = node
    spec = write_spec(env, "gw.herc", spec_text())
    keys_init(env, spec)
    rc, out, err = env.apply(spec)
    assert rc == 0, err + out
    # the tunnel interface, ours, in the network's namespace
    link = sh("ip", "-n", NS, "-d", "link", "show", IF)
    assert "hercules:a" in link and "mtu 1420" in link
    assert "inet 100.127.0.2/32" in sh("ip", "-n", NS, "addr", "show", IF)
    assert f"100.127.0.1 dev {IF}" in sh("ip", "-n", NS, "route")
    shown = sh("ip", "netns", "exec", NS, "wg", "show", IF, "dump").splitlines()
    public = json.loads((env.keys / "public.json").read_text())
    peer = shown[1].split("\t")
    assert peer[0] == public[f"gateway:{GW}"]
    assert peer[2] == f"{GW_ADDRESS}:7443" and peer[3] == "100.127.0.1/32" and peer[7] == "25"
    tables = [i["table"] for i in nft_json(NS) if "table" in i]
    assert [(t["family"], t["name"]) for t in tables] == [("inet", "hercules-gateways")]
    assert 'comment "hercules sha256:' in sh(
        "ip", "netns", "exec", NS, "nft", "list", "table", "inet", "hercules-gateways"
    )
    rc, out, err = env.plan(spec)
    assert rc == 0 and NO_CHANGES in out, err + out

    # the tunnel's liveness probe: a ping of the gateway, in the namespace, by PID
    pid = probe_pid(env)
    assert probe_of(procfs.cmdline(pid) or []) == ("100.127.0.1", INTERVAL_S)
    assert Path(f"/proc/{pid}/ns/net").stat().st_ino == Path("/run/netns", NS).stat().st_ino
    # killed, it shows as a create, and apply starts it again
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert changes(env.plan_json(spec)) == {PROBE: "create"}
    rc, out, err = env.apply(spec)
    assert rc == 0, err + out
    assert probe_pid(env) != pid
    rc, out, err = env.plan(spec)
    assert rc == 0 and NO_CHANGES in out, err + out

    # a hand edit shows as an update of the table, and apply repairs it
    sh(
        "ip",
        "netns",
        "exec",
        NS,
        "nft",
        "add",
        "rule",
        "inet",
        "hercules-gateways",
        "input",
        "accept",
    )
    plan = env.plan_json(spec)
    assert changes(plan) == {TABLE: "update"}
    rc, out, err = env.plan(spec)
    assert '~ rules = "forward=4 input=3 prerouting=1" -> "forward=4 input=2 prerouting=1"' in out
    saved = env.tmp / "repair.json"  # a saved plan carries the ruleset it loads
    rc, out, err = env.plan(spec, "-o", str(saved))
    assert rc == 0, err + out
    assert "hercules-gateways" in json.loads(saved.read_text())["changes"][0]["after"]["content"]
    rc, out, err = env.apply(saved, node=None)
    assert rc == 0, err + out
    rc, out, err = env.plan(spec)
    assert rc == 0 and NO_CHANGES in out, err + out

    # no service: the tunnel and its table are gone, the rest stays
    bare = write_spec(env, "bare.herc", spec_text(service=False))
    plan = env.plan_json(bare)
    gone = changes(plan)
    assert set(gone.values()) == {"delete"}
    kinds = {a.split(".", 1)[0] for a in gone}
    assert kinds == {"wireguard", "address", "route", "peer", "nft", "probe"}
    pid = probe_pid(env)
    rc, out, err = env.apply(bare)
    assert rc == 0, err + out
    assert procfs.proc_start_time(pid) is None  # the probe is stopped
    assert json.loads(probe_pid_file(env.state, "a").read_text()) == {}
    assert IF not in sh("ip", "-n", NS, "link")
    assert not [i for i in nft_json(NS) if "table" in i]
    rc, out, err = env.plan(bare)
    assert rc == 0 and NO_CHANGES in out, err + out


def test_a_failed_apply_takes_the_tunnel_back(node: Node) -> None:
    env = node
    spec = write_spec(env, "gw.herc", spec_text())
    keys_init(env, spec)
    rc, out, err = env.apply(spec, env={"HERCC_FAIL_AT": TABLE})
    assert rc == 1, out
    assert f"create {TABLE} failed" in err and "the node is back as it was" in err
    assert not Path("/run/netns", NS).exists()
    assert not Path(f"/var/run/wireguard/{IF}.sock").exists()


def test_a_foreign_table_is_not_taken_over(node: Node) -> None:
    env = node
    spec = write_spec(env, "gw.herc", spec_text())
    keys_init(env, spec)
    bare = write_spec(env, "bare.herc", spec_text(service=False))
    rc, out, err = env.apply(bare)
    assert rc == 0, err + out
    sh("ip", "netns", "exec", NS, "nft", "add", "table", "inet", "hercules-gateways")
    rc, out, err = env.plan(spec)
    assert rc == 1
    assert (
        f"nftables table inet hercules-gateways exists in namespace {NS} and is not Hercules'"
        in err
    )


# --------------------------------------------------------------------------- packets


class FakeGateway:
    """The gateway's end: wireguard-go on the underlay at the gateway's address, its
    interface in a namespace of its own, the gateway's key from the keys directory."""

    def __init__(self, env: Node) -> None:
        self.env = env
        self.ns = f"{PREFIX}fgw"
        self.ifname = f"fg{PID}"
        self.procs: list[subprocess.Popen[bytes]] = []
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", env.underlay, "addr", "add", f"{GW_ADDRESS}/32", "dev", "lo")
        wg_go = subprocess.Popen(
            ["ip", "netns", "exec", env.underlay, "wireguard-go", "-f", self.ifname],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"WG_PROCESS_FOREGROUND": "1", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin"},
        )
        self.procs.append(wg_go)
        sock = Path(f"/var/run/wireguard/{self.ifname}.sock")
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        sh("ip", "-n", env.underlay, "link", "set", self.ifname, "netns", self.ns)

    def configure(self, node_pubkey: str, allowed: str) -> None:
        key = self.env.keys / "gateways" / f"{GW}.key"
        sh(
            "ip", "netns", "exec", self.ns, "wg", "set", self.ifname,
            "private-key", str(key), "listen-port", "7443",
            "peer", node_pubkey, "allowed-ips", allowed,
        )  # fmt: skip
        sh("ip", "-n", self.ns, "addr", "add", "100.127.0.1/24", "dev", self.ifname)
        sh("ip", "-n", self.ns, "link", "set", self.ifname, "up")
        sh("ip", "-n", self.ns, "route", "add", "10.77.0.0/16", "dev", self.ifname)

    def serve(self, ns: str, address: str, port: int) -> None:
        code = (
            "import socket\n"
            f"s = socket.create_server(({address!r}, {port}))\n"
            "while True:\n"
            "    c, _ = s.accept()\n"
            "    c.sendall(b'hello from web')\n"
            "    c.close()\n"
        )
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code])
        self.procs.append(proc)

    def connect(self, address: str, port: int, timeout: float = 2.0) -> str:
        code = (
            "import socket, sys\n"
            "try:\n"
            f"    c = socket.create_connection(({address!r}, {port}), timeout={timeout})\n"
            "    print(c.recv(100).decode())\n"
            "except OSError as e:\n"
            "    print('failed:', type(e).__name__)\n"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            check=False,
        )
        return done.stdout.strip()

    def pings(self, address: str) -> bool:
        """Whether an echo request from the gateway's namespace gets its reply."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, "ping", "-c", "1", "-W", "2", address],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    def handshake(self) -> bool:
        dump = sh("ip", "netns", "exec", self.ns, "wg", "show", self.ifname, "latest-handshakes")
        return any(line.split()[1] != "0" for line in dump.splitlines())

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        subprocess.run(
            ["ip", "netns", "del", self.ns], capture_output=True, timeout=10, check=False
        )
        with contextlib.suppress(FileNotFoundError):
            Path(f"/var/run/wireguard/{self.ifname}.sock").unlink()


def node_pings() -> bool:
    """Whether an echo request from the node's tunnel namespace to the gateway gets its reply."""
    done = subprocess.run(
        ["ip", "netns", "exec", NS, "ping", "-c", "1", "-W", "2", "100.127.0.1"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return done.returncode == 0


def test_the_gateway_reaches_only_the_exposed_workload_port(node: Node) -> None:
    env = node
    spec = write_spec(env, "gw.herc", spec_text())
    keys_init(env, spec)
    rc, out, err = env.apply(spec)
    assert rc == 0, err + out
    gateway = FakeGateway(env)
    try:
        public = json.loads((env.keys / "public.json").read_text())
        # a gateway that tries more than it was given: it routes the whole network
        gateway.configure(public["a"], "100.127.0.2/32,10.77.0.0/16")
        for ns, address in ((WEB_NS, "10.77.0.20"), (f"{PREFIX}herc-w-other", "10.77.0.21")):
            gateway.serve(ns, address, 8080)
            gateway.serve(ns, address, 8081)
        # the node dials: a packet from its side starts the handshake
        subprocess.run(
            ["ip", "netns", "exec", NS, "ping", "-c", "1", "-W", "1", "100.127.0.1"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        deadline = time.monotonic() + 10
        while not gateway.handshake() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gateway.handshake()
        assert gateway.connect("100.127.0.2", 8080) == "hello from web"
        assert gateway.connect("100.127.0.2", 8081).startswith("failed")  # not exposed
        assert gateway.connect("10.77.0.20", 8081).startswith("failed")  # ditto, directly
        assert gateway.connect("10.77.0.20", 8080).startswith("failed")  # not by its own address
        assert gateway.connect("10.77.0.21", 8080).startswith("failed")  # another workload
        # the node itself: its probe's echo replies come in, nothing the gateway opens does
        gateway.serve(NS, "0.0.0.0", 8082)
        assert node_pings()
        assert gateway.connect("100.127.0.2", 8082).startswith("failed")
        assert not gateway.pings("100.127.0.2")
        # the control: without the table, the same tunnel reaches all of it
        sh("ip", "netns", "exec", NS, "nft", "delete", "table", "inet", "hercules-gateways")
        assert gateway.connect("10.77.0.21", 8080) == "hello from web"
        assert gateway.connect("10.77.0.20", 8081) == "hello from web"
        assert gateway.connect("100.127.0.2", 8082) == "hello from web"
        assert gateway.pings("100.127.0.2")
    finally:
        gateway.close()
