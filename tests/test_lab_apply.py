"""`hercc lab plan|apply SPEC`: every lab node planned and applied like a real node.

The naming and rendering are checked anywhere. Live tests need root,
iproute2, nftables, wireguard-go, wg, ping and sysctl, and skip with the
reason otherwise. Every lab has a per-run name (p<pid>...), lives in the
run's own state directory (conftest.lab_root), and its fixture always runs
`lab down` and checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.lab import harness, persistent, topology
from hercc.lab.naming import lab_naming
from hercc.lab.persistent.statefile import alive, lab_dir, state_file
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from tests.conftest import EXAMPLES
from tests.labtools import lab, netns_with, wireguard_go_of

REFERENCE = EXAMPLES / "reference.herc"
QUICKSTART = EXAMPLES / "quickstart.herc"
REASON = harness.missing_requirements((*harness.TOOLS, "sysctl"))
RUN = f"p{os.getpid()}"


def started(spec: Path, name: str) -> Iterator[persistent.LabState]:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    persistent.down_lab(name)  # a leftover of a crashed run with this pid
    prefix = topology.prefix_for_lab(name)
    try:
        code, _, err = lab("up", "--name", name, str(spec))
        assert code == 0, err
        yield persistent.load_state(name)
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
        assert netns_with(prefix) == []
        assert wireguard_go_of(prefix + "w") == []
        assert [s for s in os.listdir("/var/run/wireguard") if s.startswith(prefix + "w")] == []
        assert not state_file(name).exists()
        assert not lab_dir(name).exists()


def without_web(tmp: Path, port: int = 51821) -> Path:
    """reference.herc without workload web (and its service shop), network port `port`."""
    text = REFERENCE.read_text(encoding="utf-8")
    text = re.sub(r"\nworkload web \{.*?\n\}\n", "\n", text, flags=re.S)
    text = re.sub(r"\nservice shop \{.*?\n\}\n", "\n", text, flags=re.S)
    text = text.replace("port       51820 ", f"port       {port} ", 1)
    assert "workload web" not in text and f"port       {port}" in text
    path = tmp / "changed.herc"
    path.write_text(text, encoding="utf-8")
    return path


def node_block(out: str, node: str) -> str:
    return out.split(f"# node {node}\n", 1)[1].split("\n# node ", 1)[0]


# ---------------------------------------------------------------- no root needed


def test_plan_and_apply_parse() -> None:
    args = cli.parser().parse_args(
        ["lab", "plan", "--name", "x", "s.herc", "--detailed-exitcode", "--json"]
    )
    assert (args.lab_command, args.name, args.spec) == ("plan", "x", "s.herc")
    assert args.detailed_exitcode and args.json
    args = cli.parser().parse_args(["lab", "apply", "s.herc"])
    assert (args.lab_command, args.name, args.spec) == ("apply", "lab", "s.herc")


def test_lab_names_are_a_naming_per_node() -> None:
    """The lab's namespaces and interfaces are what desired_state names for each node."""
    model = compile_spec(str(REFERENCE)).ir
    topo = topology.topology_of(model, "hx")
    for node in ("alpha", "gamma"):
        mine = {m.network: m.wg_if for m in topo.members if m.node == node}
        naming = lab_naming("hx", node, mine)
        ids = {r.address for r in desired_state(model, node, naming)}
        member = topo.member(node, "prod")
        assert f"netns.{member.ns}" in ids
        assert f"wireguard.{member.ns}/{member.wg_if}" in ids
        for w in (w for w in topo.workloads if w.node == node):
            assert f"netns.{w.ns}" in ids
            assert f"veth.{member.ns}/{w.member_if}" in ids
    # a running lab keeps its WireGuard names; a new member takes a free one
    kept = {("gamma", "prod"): "hxw7"}
    again = topology.topology_of(model, "hx", kept)
    assert again.member("gamma", "prod").wg_if == "hxw7"
    names = [m.wg_if for m in again.members]
    assert len(set(names)) == len(names)


def test_plan_of_a_lab_that_is_not_there(tmp_path: Path) -> None:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    code, _, err = lab("plan", "--name", RUN + "none", str(REFERENCE))
    assert code == 1 and "no lab named" in err


# ---------------------------------------------------------------- live


@pytest.fixture
def ref() -> Iterator[persistent.LabState]:
    yield from started(REFERENCE, RUN + "r")


@pytest.mark.live
def test_plan_apply_round_trip(ref: persistent.LabState, tmp_path: Path) -> None:
    name, p = ref.name, ref.prefix
    code, out, err = lab("plan", "--name", name, str(REFERENCE), "--detailed-exitcode")
    assert code == 0, err
    assert out.count("No changes. Your node matches the spec.") == 4
    assert out.endswith(f"No changes. Every node of lab {name!r} matches the spec.\n")

    changed = without_web(tmp_path)
    code, out, err = lab("plan", "--name", name, str(changed), "--detailed-exitcode")
    assert code == 2, err
    assert out.splitlines()[-1] == (
        f"Lab {name!r}: 0 to add, 2 to change, 11 to destroy on 2 of 4 nodes."
    )
    for node in ("alpha", "beta"):
        assert node_block(out, node).startswith("No changes.")
    delta = node_block(out, "delta")
    assert f"  ~ wireguard.{p}-x-delta-prod/" in delta
    assert "~ listen_port = 51820 -> 51821" in delta
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in delta
    gamma = node_block(out, "gamma")
    x, w = f"{p}-x-gamma-prod", f"{p}-w-web"
    for line in (
        f"  - netns.{w}",
        f"  - veth.{x}/hv-web",
        f"  - address.{x}/hv-web/fe80::1/64",
        f"  - address.{w}/eth0/",
        f"  - route.{w}/0.0.0.0/0",
        f"  - route.{w}/::/0",
        f"  - route.{x}/10.20.",
        f"  - sysctl.{x}/net.ipv4.ip_forward",
        f"  - sysctl.{x}/net.ipv6.conf.all.forwarding",
        f"  ~ wireguard.{x}/",
    ):
        assert line in gamma, line
    assert "Plan: 0 to add, 1 to change, 11 to destroy." in gamma

    code, out, err = lab("plan", "--name", name, str(changed), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"] == {"add": 0, "change": 2, "destroy": 11}
    actions = {
        (node, c["kind"], c["action"])
        for node, plan in data["nodes"].items()
        for c in plan["resource_changes"]
    }
    assert actions == {
        ("delta", "wireguard", "update"),
        ("gamma", "wireguard", "update"),
        ("gamma", "netns", "delete"),
        ("gamma", "veth", "delete"),
        ("gamma", "address", "delete"),
        ("gamma", "route", "delete"),
        ("gamma", "sysctl", "delete"),
    }

    code, out, err = lab("apply", "--name", name, str(changed))
    assert code == 0, err
    assert "Apply complete: 0 added, 2 changed, 11 destroyed on 2 nodes (delta, gamma)." in err
    code, out, err = lab("plan", "--name", name, str(changed), "--detailed-exitcode")
    assert code == 0, out + err
    assert f"{p}-w-web" not in netns_with(p)

    code, out, err = lab("check", "--name", name, "--json")
    assert code == 0, out
    seen = {r["from"] for r in json.loads(out)["results"]}
    assert "web" not in seen and "api" in seen
    state = persistent.load_state(name)
    assert state.spec == str(changed)
    assert all(alive(i) for i in state.interfaces)

    # and back: the workload is created by the executor, the ports move back
    code, out, err = lab("apply", "--name", name, str(REFERENCE))
    assert code == 0, err
    assert "Apply complete: 11 added, 2 changed, 0 destroyed" in err
    code, out, err = lab("plan", "--name", name, str(REFERENCE), "--detailed-exitcode")
    assert code == 0, out + err
    code, out, err = lab("check", "--name", name, "--json")
    assert code == 0, out
    assert "web" in {r["from"] for r in json.loads(out)["results"]}


@pytest.mark.live
def test_the_underlay_is_fixed(ref: persistent.LabState, tmp_path: Path) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    added = tmp_path / "added.herc"
    added.write_text(text + "\nnode omega {\n  network prod\n  nat\n}\n", encoding="utf-8")
    code, _, err = lab("plan", "--name", ref.name, str(added))
    assert code == 1 and "adds node omega" in err and "re-create the lab" in err
    moved = tmp_path / "moved.herc"
    moved.write_text(text.replace("192.0.2.10:51820", "192.0.2.11:51820"), encoding="utf-8")
    code, _, err = lab("apply", "--name", ref.name, str(moved))
    assert code == 1 and "moves alpha" in err and "re-create the lab" in err
    code, out, err = lab("plan", "--name", ref.name, str(REFERENCE), "--detailed-exitcode")
    assert code == 0, out + err


@pytest.fixture
def quick() -> Iterator[persistent.LabState]:
    yield from started(QUICKSTART, RUN + "q")


@pytest.mark.live
def test_apply_adds_a_network(quick: persistent.LabState, tmp_path: Path) -> None:
    """A new network on two nodes: namespaces and wireguard-go started by the executor."""
    spec = tmp_path / "two.herc"
    text = QUICKSTART.read_text(encoding="utf-8")
    text = text.replace("node edge1 {\n  network  demo", "node edge1 {\n  network  demo, side")
    text = text.replace("node edge2 {\n  network  demo", "node edge2 {\n  network  demo, side")
    spec.write_text(
        text + "\nnetwork side {\n  range 10.43.0.0/16\n  port 51830\n}\n", encoding="utf-8"
    )
    code, out, err = lab("plan", "--name", quick.name, str(spec), "--detailed-exitcode")
    assert code == 2, err
    assert f"  + wireguard.{quick.prefix}-x-edge1-side/" in out
    code, out, err = lab("apply", "--name", quick.name, str(spec))
    assert code == 0, err
    code, out, err = lab("plan", "--name", quick.name, str(spec), "--detailed-exitcode")
    assert code == 0, out + err
    state = persistent.load_state(quick.name)
    side = [i for i in state.interfaces if i.network == "side"]
    assert len(side) == 2 and all(alive(i) for i in side)
    assert len({i.name for i in state.interfaces}) == len(state.interfaces)
    code, out, err = lab("check", "--name", quick.name, "--json")
    assert code == 0, out
    assert {"edge1@side", "edge2@side"} <= {r["from"] for r in json.loads(out)["results"]}
