"""Moving an exposed workload to another node of a running lab: spec change, plan, apply.

With tests/lab_gateways.herc in a named lab (`hercc lab up`), web1 moves
from node a to node b: `lab plan` shows exactly the expected changes (a
loses the workload and, with nothing exposed left, its tunnels and table; b
gets the workload and its forwards; each gateway drops a's peer and gives
b's the workload's tunnel address, HAProxy unchanged since the workload
keeps that address), `lab apply` carries it out, the public name answers
from web1 on its new node through both gateways, and a plan after it has
no changes. Then it moves back. Needs root and the tools of the gateway
lab; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from hercc.lab import persistent
from hercc.lab.harness import missing_requirements
from tests.labtools import lab, netns_with

SPEC = Path(__file__).parent / "lab_gateways.herc"
REASON = missing_requirements(
    ("ip", "nft", "wg", "wireguard-go", "haproxy", "named", "dig", "curl", "openssl")
)
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]
NAME = "shop.example.com"


def _changes(plan: dict[str, object]) -> Counter[tuple[str, str]]:
    """(action, kind) of every change of one node's or gateway's JSON plan."""
    changes = plan["resource_changes"]
    assert isinstance(changes, list)
    return Counter((c["action"], c["kind"]) for c in changes)


def _answers(prefix: str, gateway: str) -> set[str]:
    """Who answers http://NAME/ through `gateway`'s address, over 8 requests."""
    address = {"gw1": "203.0.113.1", "gw2": "203.0.113.2"}[gateway]
    curl = ["curl", "-sS", "--max-time", "3", "--resolve", f"{NAME}:80:{address}"]
    out = set()
    for _ in range(8):
        done = subprocess.run(
            ["ip", "netns", "exec", f"{prefix}-i", *curl, f"http://{NAME}/"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        out.add(done.stdout.split("\n")[0] if done.returncode == 0 else "failed")
    return out


def _web1_on(prefix: str, node: str) -> bool:
    """Whether web1's veth is in `node`'s namespace of network shop."""
    done = subprocess.run(
        ["ip", "-n", f"{prefix}-x-{node}-shop", "link", "show", "hv-web1"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return done.returncode == 0


def test_a_moved_workload_keeps_its_public_name(tmp_path: Path) -> None:
    name = f"m{os.getpid()}"
    moved = tmp_path / "moved.herc"
    moved.write_text(
        SPEC.read_text().replace("workload web1 { node a }", "workload web1 { node b }")
    )
    persistent.down_lab(name)
    try:
        code, _, err = lab("up", "--name", name, str(SPEC))
        assert code == 0, err
        prefix = persistent.load_state(name).prefix
        assert _web1_on(prefix, "a")

        code, out, err = lab("plan", "--name", name, "--json", str(moved))
        assert code == 0, err
        plan = json.loads(out)
        assert _changes(plan["nodes"]["a"]) == Counter(
            {
                ("delete", "netns"): 1,  # web1's
                ("delete", "veth"): 1,
                ("delete", "address"): 3,  # web1's own, its tunnel addresses on two tunnels
                ("delete", "route"): 5,  # web1's default, to web1, to each gateway (3 addresses)
                ("delete", "sysctl"): 1,  # a forwards for no workload any more
                ("delete", "wireguard"): 2,  # its tunnels to gw1 and gw2
                ("delete", "peer"): 2,
                ("delete", "nft"): 1,
                ("delete", "probe"): 2,  # the tunnels' liveness probes
            }
        )
        assert _changes(plan["nodes"]["b"]) == Counter(
            {
                ("create", "netns"): 1,
                ("create", "veth"): 1,
                ("create", "address"): 3,
                ("create", "route"): 2,
                ("update", "nft"): 1,  # web1's forwards join db's
            }
        )
        assert _changes(plan["nodes"]["c"]) == Counter()
        for gw in ("gw1", "gw2"):  # a's peer goes, b's takes web1's tunnel address
            assert _changes(plan["gateways"][gw]) == Counter(
                {("delete", "peer"): 1, ("update", "peer"): 1}
            )

        code, _, err = lab("apply", "--name", name, str(moved))
        assert code == 0, err
        assert _web1_on(prefix, "b") and not _web1_on(prefix, "a")
        for gw in ("gw1", "gw2"):
            assert "web1" in _answers(prefix, gw)
        code, out, err = lab("plan", "--name", name, str(moved))
        assert code == 0 and "No changes. Every node of lab" in out, out + err

        code, _, err = lab("apply", "--name", name, str(SPEC))  # and back
        assert code == 0, err
        assert _web1_on(prefix, "a")
        assert "web1" in _answers(prefix, "gw1")
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
    assert netns_with(prefix) == []
