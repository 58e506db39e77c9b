"""The lab's public side, live: the internet namespace, DNS, the workloads' servers, the gateways.

Real processes in lab namespaces, with tests/lab_gateways.herc (two
gateways, gw1 with IPv4 and IPv6, gw2 IPv4 only; a service with two
replicas on different nodes, one behind NAT, exposed as http and https with
a health check every second; a tcp expose; a zone). A client in the
internet namespace reaches every exposed name and port through each
gateway, by the lab's DNS, with the lab CA as its only trust; what is not
exposed is not reachable, from the Internet or from a gateway. Then a
gateway is lost and brought back, a replica is stopped and started, and a
bounded load runs through a gateway. Needs root, iproute2, nftables,
wireguard-go, HAProxy, named, dig, curl, openssl and wrk; skips with the
reason otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hercc.lab import Lab, compile_for_lab, persistent
from hercc.lab.daemons import alive
from hercc.lab.harness import missing_requirements
from hercc.lab.internet import etc_dir
from tests.labtools import lab, netns_with

SPEC = str(Path(__file__).parent / "lab_gateways.herc")
TOOLS = ("ip", "nft", "wg", "wireguard-go", "ping", "ss", "sysctl", "haproxy", "named", "dig")
REASON = missing_requirements((*TOOLS, "curl", "openssl", "wrk"))
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]
NAME = "shop.example.com"
GATEWAYS = {"gw1": ("203.0.113.1", "2001:db8:1::1"), "gw2": ("203.0.113.2",)}
REPLICAS = {"web1", "web2"}
HEALTH_INTERVAL = 1.0  # seconds: `health http "/healthz" every 1s` in the spec


@pytest.fixture(scope="module")
def gwlab() -> Iterator[Lab]:
    compiled, keys = compile_for_lab(SPEC)
    with Lab(compiled.ir, keys=keys) as running:
        yield running


def sh(lab_: Lab, where: str, command: str, timeout: float = 15) -> tuple[int, str]:
    done = lab_.exec(where, ["bash", "-c", command], timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def fetch(lab_: Lab, scheme: str, address: str, name: str = NAME, extra: str = "") -> str:
    """Who answers `scheme://name/` sent to `address` from the internet (its first line)."""
    port = 443 if scheme == "https" else 80
    curl = (
        f"curl -sS --max-time 3 {extra} --resolve {name}:{port}:{host(address)} {scheme}://{name}/"
    )
    code, out = sh(lab_, "internet", curl)
    return out.splitlines()[0] if code == 0 and out else f"failed: {out.strip()}"


def banner(lab_: Lab, where: str, address: str, port: int, wait: float = 2) -> str:
    """The first line a TCP server at address:port sends, from `where` ("" if none)."""
    script = f"exec 3<>/dev/tcp/{address}/{port} && head -n 1 <&3"
    code, out = sh(lab_, where, f"timeout {wait:g} bash -c {shlex.quote(script)}")
    return out.strip() if code == 0 else ""


def connects(lab_: Lab, where: str, address: str, port: int, wait: float = 1) -> bool:
    script = f"exec 3<>/dev/tcp/{address}/{port}"
    return sh(lab_, where, f"timeout {wait:g} bash -c {shlex.quote(script)}")[0] == 0


def admin(lab_: Lab, gateway: str, command: str) -> str:
    """A command on the gateway's HAProxy runtime API (its admin socket in the lab's dir)."""
    path = lab_.workdir / "gateways" / gateway / "admin.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: s.recv(65536), b"")).decode()


def server_state(lab_: Lab, gateway: str, backend: str, server: str) -> int:
    """srv_op_state of one server (0 down, 2 up) from `show servers state`."""
    for line in admin(lab_, gateway, f"show servers state {backend}").splitlines():
        f = line.split()
        if len(f) > 5 and f[1] == backend and f[3] == server:
            return int(f[5])
    raise AssertionError(f"no server {backend}/{server} on {gateway}")


def test_dns_answers_one_record_per_gateway(gwlab: Lab) -> None:
    code, out = sh(gwlab, "internet", f"dig +short {NAME} A; dig +short {NAME} AAAA")
    assert code == 0 and sorted(out.split()) == ["2001:db8:1::1", "203.0.113.1", "203.0.113.2"]
    code, out = sh(gwlab, "internet", f"getent ahostsv4 {NAME}")  # the resolver, by name
    assert code == 0 and {line.split()[0] for line in out.splitlines()} == {
        "203.0.113.1",
        "203.0.113.2",
    }


def test_each_replica_serves_its_certificate(gwlab: Lab) -> None:
    ca = gwlab.workdir / "certs" / "ca.pem"
    for workload in ("web1", "web2"):
        curl = f"curl -sS --cacert {ca} --resolve {NAME}:8080:127.0.0.1 https://{NAME}:8080/"
        code, out = sh(gwlab, workload, curl)
        assert code == 0 and out == f"{workload}\nhost {NAME}:8080\n"
        code, out = sh(gwlab, workload, "curl -sS http://127.0.0.1:8080/healthz")
        assert code == 0 and out == "ok\n"
        code, out = sh(gwlab, workload, "openssl s_client -connect 127.0.0.1:8080 </dev/null")
        assert f"CN = {workload}" in out and "hercc lab CA" in out
    code, out = sh(gwlab, "db", "exec 3<>/dev/tcp/127.0.0.1/5432 && head -n 1 <&3")
    assert code == 0 and out == "db 5432\n"


def test_the_workloads_have_no_route_from_the_internet(gwlab: Lab) -> None:
    for w in gwlab.topology.workloads:
        assert w.address is not None
        code, _ = sh(gwlab, "internet", f"curl -sS --max-time 1 http://{w.address}:8080/")
        assert code != 0
        assert not gwlab.ping("internet", w.address, timeout=0.5)


def test_a_stopped_server_is_down_until_started(gwlab: Lab) -> None:
    healthz = "curl -sS --max-time 2 http://127.0.0.1:8080/healthz"
    gwlab.stop_server("web2")
    assert sh(gwlab, "web2", healthz)[0] != 0
    gwlab.start_server("web2")
    assert sh(gwlab, "web2", healthz) == (0, "ok\n")


def answers_after_apply(name: str, expected: set[str]) -> set[str]:
    """Who answers https through gw1 (6 requests), once `lab check` passes; asked again
    until that is `expected` or 30 s have passed (a replica back needs its tunnel's
    handshake and HAProxy's `rise` checks: seconds on a loaded machine)."""
    deadline = time.monotonic() + 30
    while True:
        code, out, _ = lab("check", "--name", name, "--json")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 0, out
    internet = persistent.load_state(name).internet
    assert internet is not None
    resolve = f"{NAME}:443:{GATEWAYS['gw1'][0]}"
    curl = ["curl", "-sS", "--max-time", "3", "--resolve", resolve, f"https://{NAME}/"]
    argv = ["ip", "netns", "exec", internet.ns, *curl]
    while True:
        runs = [
            subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            for _ in range(6)
        ]
        answers = {done.stdout.split("\n")[0] for done in runs}
        if answers == expected or time.monotonic() > deadline:
            return answers
        time.sleep(0.5)


def test_lab_cli_runs_the_public_side_and_removes_it(tmp_path: Path) -> None:
    name = f"g{os.getpid()}"
    persistent.down_lab(name)
    try:
        code, _, err = lab("up", "--name", name, SPEC)
        assert code == 0, err
        state = persistent.load_state(name)
        hercc = [sys.executable, "-m", "hercc", "lab"]
        exec_dig = subprocess.run(
            [*hercc, "exec", "--name", name, "internet", "--", "dig", "+short", NAME],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert sorted(exec_dig.stdout.split()) == ["203.0.113.1", "203.0.113.2"]
        code, out, _ = lab("check", "--name", name, "--json")
        public = json.loads(out)["public"]
        assert code == 0 and all(p["ok"] for p in public), out
        # per gateway address: https and http by name, the tcp port; and the name in DNS
        assert sorted((p["kind"], p["gateway"], p["address"]) for p in public) == sorted(
            [(k, gw, a) for gw, addrs in GATEWAYS.items() for a in addrs for k in ("http", "https")]
            + [("tcp", gw, a) for gw, addrs in GATEWAYS.items() for a in addrs]
            + [("dns", None, None)]
        )
        assert {p["answer"] for p in public if p["kind"] in ("http", "https")} <= REPLICAS
        # one replica fewer, then back: the gateways are planned and applied with the nodes
        one = tmp_path / "one.herc"
        one.write_text(Path(SPEC).read_text().replace("workload web1, web2", "workload web1"))
        code, out, err = lab("apply", "--name", name, str(one))
        assert code == 0, err
        assert "# gateway gw1\n" in out and f"  ~ haproxy.{state.prefix}-g-gw1/gw1" in out
        assert "and 2 gateway(s) (gw1, gw2)." in err
        assert answers_after_apply(name, {"web1"}) == {"web1"}
        code, out, err = lab("apply", "--name", name, SPEC)
        assert code == 0, err
        assert answers_after_apply(name, REPLICAS) == REPLICAS
        assert {(d.role, d.name) for d in state.daemons} >= {
            ("named", "dns"),
            ("server", "web1"),
            ("server", "web2"),
            ("server", "db"),
            ("haproxy", "gw1"),
            ("wireguard-go", "gw2"),
        }
        assert etc_dir(f"{state.prefix}-i").is_dir()
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
    assert netns_with(state.prefix) == []
    assert not any(alive(d) for d in state.daemons)
    assert not etc_dir(f"{state.prefix}-i").exists()


# ---------------------------------------------------------------- through the gateways


def test_each_gateway_serves_http_https_and_tcp(gwlab: Lab) -> None:
    for gw, addresses in GATEWAYS.items():
        for address in addresses:
            for scheme in ("https", "http"):
                answers = {fetch(gwlab, scheme, address) for _ in range(4)}
                assert answers == REPLICAS, (gw, address, scheme)  # round robin over both
            assert banner(gwlab, "internet", address, 15432) == "db 5432", (gw, address)


def test_https_is_routed_by_sni_and_the_certificate_is_the_workloads(gwlab: Lab) -> None:
    gw1 = GATEWAYS["gw1"][0]
    # the client trusts the lab CA only: a verified connection to the name, end to end
    code, out = sh(gwlab, "internet", f"curl -sS --max-time 3 https://{NAME}/")
    assert code == 0 and out.splitlines()[0] in REPLICAS
    # an unknown name, or none, is refused by the gateway (even with -k)
    assert fetch(gwlab, "https", gw1, "other.example.com", "-k").startswith("failed")
    code, _ = sh(gwlab, "internet", f"curl -sS -k --max-time 3 https://{gw1}/")
    assert code != 0
    # the certificate that comes back through the gateway is a replica's, issued by the lab CA
    probe = f"openssl s_client -connect {gw1}:443 -servername {NAME} </dev/null 2>/dev/null"
    subjects = set()
    for _ in range(4):
        code, out = sh(gwlab, "internet", f"{probe} | openssl x509 -noout -subject -issuer")
        assert code == 0, out
        lines = dict(line.split("=", 1) for line in out.splitlines())
        assert "CN = hercc lab CA" in lines["issuer"]
        subjects.add(lines["subject"].rsplit("CN = ", 1)[1].strip())
    assert subjects == REPLICAS
    # Host routing: an unknown host gets HAProxy's 404, not a workload
    code, out = sh(gwlab, "internet", f"curl -s -o /dev/null -w '%{{http_code}}' http://{gw1}/")
    assert out == "404"


def test_a_port_nobody_exposed_is_refused(gwlab: Lab) -> None:
    for address in (*GATEWAYS["gw1"], *GATEWAYS["gw2"]):
        for port in (8080, 5432, 22, 15433):
            assert not connects(gwlab, "internet", address, port), (address, port)


def test_from_a_gateway_nothing_but_the_exposed_is_reachable(gwlab: Lab) -> None:
    model = gwlab.model
    gw1 = next(g for g in model.gateways if g.name == "gw1")
    forwards = [f for t in gw1.tunnels for f in t.forwards]
    exposed = {(f.tunnel_address, f.port) for f in forwards}
    # the exposed (workload, port) pairs answer through the tunnels...
    for f in forwards:
        if f.workload == "db":
            assert banner(gwlab, "gateway:gw1", f.tunnel_address, f.port) == "db 5432"
        else:
            assert connects(gwlab, "gateway:gw1", f.tunnel_address, f.port, wait=2)
    # ...and nothing else: other ports of the tunnel addresses, the workloads' and the nodes'
    # overlay addresses, on the exposed ports and on others
    tries = [(f.tunnel_address, p) for f in forwards for p in (22, 53, 5432, 8080, 15432)]
    tries = [t for t in tries if t not in exposed]
    overlay = [w.address for w in gwlab.topology.workloads if w.address]
    overlay += [m.addresses[0].split("/")[0] for m in gwlab.topology.members]
    tries += [(a, p) for a in overlay for p in (22, 5432, 8080)]
    assert len(tries) >= 20
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda t: connects(gwlab, "gw1", *t), tries))
    assert [t for t, ok in zip(tries, answers, strict=True) if ok] == []
    assert not any(gwlab.pings([("gw1", a) for a in overlay], timeout=0.5))


def transfer(lab_: Lab, tunnels: list[tuple[str, str]]) -> dict[str, int]:
    """Bytes each node has sent on its tunnel (`wg show dump`): a replaced peer starts at 0."""
    out = {}
    for node, name in tunnels:
        dump = lab_.exec(f"{node}@shop", ["wg", "show", name, "dump"]).stdout.splitlines()
        out[name] = int(dump[1].split("\t")[6])
    return out


def recovered(lab_: Lab, tunnels: list[tuple[str, str]], since: int, seconds: float) -> float:
    """Seconds until every tunnel has a handshake at or after `since` (AssertionError after)."""
    start = time.monotonic()
    fresh: set[str] = set()
    while time.monotonic() - start < seconds:
        for node, name in tunnels:
            out = lab_.exec(f"{node}@shop", ["wg", "show", name, "latest-handshakes"]).stdout
            if int(out.split()[1]) >= since:
                fresh.add(name)
        if len(fresh) == len(tunnels):
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{sorted({n for _, n in tunnels} - fresh)}: no handshake in {seconds} s")


def test_a_lost_gateway_leaves_the_name_answering_and_comes_back(gwlab: Lab) -> None:
    tunnels = [(n, name) for n, g, name in gwlab.topology.tunnels if g == "gw1"]
    assert len(tunnels) == 3
    deadline = time.monotonic() + 10  # health checks up (when this test runs on its own)
    while fetch(gwlab, "https", GATEWAYS["gw2"][0]) not in REPLICAS:
        assert time.monotonic() < deadline, "gw2 serves nothing"
        time.sleep(0.5)
    processes = gwlab.wireguard_go()
    sent = transfer(gwlab, tunnels)
    gwlab.stop_gateway("gw1")
    try:
        # the name has both gateways' addresses: the client moves on to the live one
        for _ in range(4):
            code, out = sh(gwlab, "internet", f"curl -sS --max-time 5 https://{NAME}/")
            assert code == 0 and out.splitlines()[0] in REPLICAS, out
        assert fetch(gwlab, "https", GATEWAYS["gw1"][0]).startswith("failed")
    finally:
        before = int(time.time())
        gwlab.start_gateway("gw1")
    # nothing is done on the nodes: their tunnels' probes make them handshake again,
    # within the keepalive (25 s), read on the nodes' side
    recovered(gwlab, tunnels, before, 25)
    assert gwlab.wireguard_go() == processes
    after = transfer(gwlab, tunnels)
    assert all(after[name] > sent[name] for name in sent), (sent, after)  # the same peers
    # and the name answers through it again, from both replicas once their health checks
    # (down while the tunnels were) rise again: HAProxy's default rise is 2
    deadline = time.monotonic() + 3 * HEALTH_INTERVAL + 2
    for scheme in ("https", "http"):
        seen: set[str] = set()
        while seen != REPLICAS and time.monotonic() < deadline:
            seen |= {fetch(gwlab, scheme, GATEWAYS["gw1"][0])} & REPLICAS
        assert seen == REPLICAS, scheme


def wait_state(lab_: Lab, server: str, state: int, seconds: float) -> float:
    """Seconds until `server` has `state` in both shop backends of gw1 (AssertionError after)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if all(
            server_state(lab_, "gw1", be, server) == state
            for be in ("svc-shop-http", "svc-shop-tcp")
        ):
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{server} not in state {state} within {seconds:g} s")


def test_health_checks_withdraw_a_stopped_replica_and_bring_it_back(gwlab: Lab) -> None:
    wait_state(gwlab, "web2", 2, 10)  # both up to begin with
    gwlab.stop_server("web2")
    try:
        took = wait_state(gwlab, "web2", 0, 3 * HEALTH_INTERVAL + 1)
        assert took <= 3 * HEALTH_INTERVAL + 0.5
        for scheme in ("https", "http"):  # the other replica answers everything
            assert {fetch(gwlab, scheme, GATEWAYS["gw1"][0]) for _ in range(6)} == {"web1"}
    finally:
        gwlab.start_server("web2")
    wait_state(gwlab, "web2", 2, 3 * HEALTH_INTERVAL + 1)
    assert {fetch(gwlab, "https", GATEWAYS["gw1"][0]) for _ in range(6)} == REPLICAS


def haproxy_worker(lab_: Lab, gateway: str) -> int:
    master = next(d.pid for d in lab_.daemons if d.role == "haproxy" and d.name == gateway)
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[-1])


def established(lab_: Lab, gateway: str) -> int:
    out = lab_.exec(f"gateway:{gateway}", ["ss", "-Htn", "state", "established"]).stdout
    return len(out.splitlines())


def test_a_bounded_load_gives_no_errors_and_leaks_nothing(gwlab: Lab) -> None:
    gw1 = GATEWAYS["gw1"][0]
    fetch(gwlab, "http", gw1)  # warm: the backend connections the load will reuse
    worker = haproxy_worker(gwlab, "gw1")
    fds, conns = len(os.listdir(f"/proc/{worker}/fd")), established(gwlab, "gw1")
    wrk = f"wrk -t2 -c32 -d10s -H 'Host: {NAME}' http://{gw1}/"
    code, out = sh(gwlab, "internet", wrk, timeout=40)
    assert code == 0, out
    requests = int(out.split(" requests in ")[0].split()[-1])
    assert requests > 1000, out
    assert "Socket errors" not in out and "Non-2xx" not in out, out
    # back to the baseline once the clients are gone (idle backend connections may linger)
    deadline = time.monotonic() + 20  # the servers close idle connections after 5 s
    while time.monotonic() < deadline:
        now_fds = len(os.listdir(f"/proc/{worker}/fd"))
        now_conns = established(gwlab, "gw1")
        if now_fds <= fds + 2 and now_conns <= conns + 2:
            break
        time.sleep(0.5)
    assert now_fds <= fds + 2 and now_conns <= conns + 2, (fds, now_fds, conns, now_conns)
