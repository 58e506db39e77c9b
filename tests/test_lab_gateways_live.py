"""The lab's public side, live: the internet namespace, DNS, the workloads' servers, the gateways.

Real processes in lab namespaces, with tests/lab_gateways.herc (two
gateways, a service with two replicas on different nodes exposed as http
and https, a tcp expose, a zone). Needs root, iproute2, nftables,
wireguard-go, named, dig and curl; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.lab import Lab, compile_for_lab, persistent
from hercc.lab.daemons import alive
from hercc.lab.harness import missing_requirements
from hercc.lab.internet import etc_dir
from tests.labtools import lab, netns_with

SPEC = str(Path(__file__).parent / "lab_gateways.herc")
REASON = missing_requirements(
    ("ip", "nft", "wg", "wireguard-go", "ping", "ss", "sysctl", "named", "dig", "curl")
)
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]
NAME = "shop.example.com"


@pytest.fixture(scope="module")
def gwlab() -> Iterator[Lab]:
    compiled, keys = compile_for_lab(SPEC)
    with Lab(compiled.ir, keys=keys) as running:
        yield running


def sh(lab_: Lab, where: str, command: str, timeout: float = 15) -> tuple[int, str]:
    done = lab_.exec(where, ["bash", "-c", command], timeout=timeout)
    return done.returncode, done.stdout + done.stderr


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


def test_lab_cli_runs_the_public_side_and_removes_it() -> None:
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
        dns = [p for p in json.loads(out)["public"] if p["kind"] == "dns"]
        assert [(p["name"], p["ok"]) for p in dns] == [(NAME, True)]
        assert {(d.role, d.name) for d in state.daemons} >= {
            ("named", "dns"),
            ("server", "web1"),
            ("server", "web2"),
            ("server", "db"),
        }
        assert etc_dir(f"{state.prefix}-i").is_dir()
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
    assert netns_with(state.prefix) == []
    assert not any(alive(d) for d in state.daemons)
    assert not etc_dir(f"{state.prefix}-i").exists()
