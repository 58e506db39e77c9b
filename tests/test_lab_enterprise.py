"""The lab's far side of enterprise links: VXLAN far ends, hosts on both sides, port stand-ins.

The descriptions are checked anywhere (reference.herc's alpha: one VXLAN,
three existing interfaces). The live test brings a lab up with `hercc lab up`
(per-run name, the run's own state directory), where a VXLAN's `local` is not
its node's endpoint (so the lab adds it on the node's uplink), pings across
the L2 segment both ways with `lab check`, changes the VNI with `lab plan`
(-/+) and `lab apply`, checks again, and takes the lab down with nothing left.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hercc.diagnostics import LabError
from hercc.lab import enterprise_l2, harness, persistent, topology
from hercc.lab.enterprise_l2 import PortStandIns, VxlanFar, l2_far_sides, runnable
from hercc.lab.far_sides import far_namespaces, far_sides
from hercc.lab.persistent.statefile import LabState, record
from hercc.pipeline import compile_spec
from hercc.resources.model import Resource, state_of
from tests.conftest import EXAMPLES
from tests.labtools import lab, netns_with

REASON = harness.missing_requirements((*harness.TOOLS, "sysctl"))
RUN = f"e{os.getpid() % 100000}"


def _reference() -> tuple[object, topology.Topology]:
    model = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir
    return model, topology.topology_of(model, "hx")


def test_far_sides_of_the_reference() -> None:
    model, t = _reference()
    sides = far_sides(model, t, "/d/nodes")  # type: ignore[arg-type]
    assert [type(s).__name__ for s in sides[:2]] == ["NodeCharons", "IpsecSite"]  # beta's link
    assert sides[2:] == (
        VxlanFar(
            "dc1",
            "hq",
            "alpha",
            100,
            "192.0.2.10",
            "192.0.2.200",
            4789,
            "br-hq",  # the near host hangs off the VXLAN's bridge
            "hx-n-alpha",
            "192.0.2.10",
            "hx-u",
            "ev0",
            "hx-ev-dc1",
            "hx-eh-dc1",
            "hx-el-dc1",
            "172.31.0.1/24",
            "172.31.0.2/24",
        ),
        PortStandIns(
            "alpha",
            "hx-n-alpha",
            (
                ("eth1", "hx-ep-alpha-eth1"),
                ("eth2", "hx-ep-alpha-eth2"),
                ("eth3", "hx-ep-alpha-eth3"),
            ),
        ),
    )
    assert far_namespaces(sides)[3:6] == ("hx-ev-dc1", "hx-eh-dc1", "hx-el-dc1")
    # recorded: deleted by `lab down`, pinged by `lab check`, reached by `lab exec`
    state = LabState("x", "hx", "s", "/d", "/d/keys", "now")
    record(state, t, model)  # type: ignore[arg-type]
    assert {"hx-ev-dc1", "hx-ep-alpha-eth2"} <= set(state.namespaces)
    ends = [(e.name, e.kind, e.network, e.ns, e.addresses, e.node) for e in state.endpoints]
    assert ends[-2:] == [
        ("near:dc1", "enterprise", "vxlan hq/dc1", "hx-el-dc1", ["172.31.0.1"], "alpha"),
        ("far:dc1", "enterprise", "vxlan hq/dc1", "hx-eh-dc1", ["172.31.0.2"], ""),
    ]
    assert state.targets["far:dc1"] == "hx-eh-dc1"


def _vxlan_spec(tmp: Path, node: str = "a", remote: str = "192.0.2.200", vni: int = 100) -> Path:
    spec = tmp / f"vx-{vni}.herc"
    spec.write_text(
        "network prod { range 10.20.0.0/16 }\n"
        "node a { network prod; endpoint 192.0.2.10:51820 }\n"
        "node b { network prod; nat }\n"
        "enterprise dc {\n"
        f"  vxlan dc1 {{ node {node}; vni {vni}; local 192.0.2.11; remote {remote}; "
        "port 4789; bridge br-lan }\n"
        "  bridge lan { node a; ports eth2 }\n"
        "}\n"
    )
    return spec


def test_what_the_lab_cannot_run(tmp_path: Path) -> None:
    for node, remote, why in (
        ("b", "192.0.2.200", "node b is behind NAT in the lab"),
        ("a", "192.0.2.10", "its remote 192.0.2.10 is lab node a's"),
    ):
        model = compile_spec(str(_vxlan_spec(tmp_path, node, remote)), use_lock=False).ir
        with pytest.raises(LabError, match=why):
            l2_far_sides(model, topology.topology_of(model, "hx"), tmp_path)
    six = _vxlan_spec(tmp_path).read_text().replace("local 192.0.2.11", "local 2001:db8::1")
    six = six.replace("remote 192.0.2.200", "remote 2001:db8::2")
    (tmp_path / "six.herc").write_text(six)
    model = compile_spec(str(tmp_path / "six.herc"), use_lock=False).ir
    with pytest.raises(LabError, match="the lab's underlay is IPv4 only"):
        l2_far_sides(model, topology.topology_of(model, "hx"), tmp_path)


def test_vlans_are_left_out_without_8021q(monkeypatch: pytest.MonkeyPatch) -> None:
    vlan = Resource("vlan", "ns/vl-x", {"parent": "eth1", "vlan_id": 7, "up": True})
    addr = Resource("address", "ns/vl-x/10.0.0.1/24", parent=vlan.address)
    other = Resource("bridge", "ns/br-x", {"up": True})
    desired = state_of([vlan, addr, other])
    monkeypatch.setattr(enterprise_l2, "vlan_unavailable_reason", lambda: "no 8021q")
    kept, left_out = runnable(desired)
    assert list(kept) == [other.address]
    assert left_out == ["vlan.ns/vl-x: no 8021q"]
    monkeypatch.setattr(enterprise_l2, "vlan_unavailable_reason", lambda: None)
    assert runnable(desired) == (desired, [])


def test_lab_vxlan_end_to_end(tmp_path: Path) -> None:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    name = RUN
    prefix = topology.prefix_for_lab(name)
    persistent.down_lab(name)
    try:
        code, out, err = lab("up", "--name", name, str(_vxlan_spec(tmp_path)))
        assert code == 0, err
        # `local` (192.0.2.11) is not a's endpoint: the lab put it on a's uplink
        shown = subprocess.run(
            ["ip", "-n", f"{prefix}-n-a", "-o", "addr", "show", "ul"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "192.0.2.11/32" in shown.stdout
        code, out, err = lab("check", "--name", name)
        assert code == 0, out + err
        assert "near:dc1" in out and "far:dc1" in out
        code, out, _ = lab(
            "exec", "--name", name, "far:dc1", "--", "ping", "-c1", "-W2", "172.31.0.1"
        )
        assert code == 0, out
        changed = _vxlan_spec(tmp_path, vni=4242)
        code, out, err = lab("plan", "--name", name, str(changed))
        assert code == 0, err
        assert f"-/+ vxlan.{prefix}-n-a/vx-dc1" in out and "vni = 100 -> 4242" in out
        assert "port." not in out  # the port stays attached
        code, out, err = lab("apply", "--name", name, str(changed))
        assert code == 0, out + err
        code, out, err = lab("plan", "--name", name, str(changed))
        assert "No changes. Every node of lab" in out
        code, out, err = lab("check", "--name", name)
        assert code == 0, out + err
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
        assert netns_with(prefix) == []


DOC = Path(__file__).resolve().parent.parent / "docs" / "lab.md"
_VOLATILE = (
    (re.compile(r"is up in [0-9.]+ s"), "is up in N s"),
    (re.compile(r"time=[0-9.]+ ms"), "time=T ms"),
    (re.compile(r"time [0-9]+ms"), "time Tms"),
    (re.compile(r"rtt min/avg/max/mdev = [0-9./]+ ms"), "rtt min/avg/max/mdev = R ms"),
)


def _doc_transcript() -> tuple[str, str]:
    """docs/lab.md's enterprise spec and the transcript after it."""
    section = DOC.read_text(encoding="utf-8").split("## Enterprise links: the far side", 1)[1]
    spec = section.split("```herc\n", 1)[1].split("```", 1)[0]
    transcript = section.split("```text\n", 1)[1].split("```", 1)[0]
    return spec, transcript


def _steady(text: str, name: str, doc_name: str = "demo") -> str:
    text = text.replace(topology.prefix_for_lab(name), topology.prefix_for_lab(doc_name))
    text = text.replace(f"'{name}'", f"'{doc_name}'").replace(f"--name {name}", "--name demo")
    for pattern, fixed in _VOLATILE:
        text = pattern.sub(fixed, text)
    return text


def test_the_docs_lab_transcript_is_real(tmp_path: Path) -> None:
    """docs/lab.md's transcript, run again: the same output, times and round trips aside."""
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    spec, transcript = _doc_transcript()
    (tmp_path / "enterprise.herc").write_text(spec, encoding="utf-8")
    changed = spec.replace("vni    100", "vni    200").replace("ports eth2", "ports eth2, eth3")
    (tmp_path / "vni200.herc").write_text(changed, encoding="utf-8")
    name = f"d{os.getpid() % 100000}"
    steps = re.split(r"^\$ hercc ", transcript, flags=re.M)[1:]
    persistent.down_lab(name)
    got = []
    try:
        for step in steps:
            argv = shlex.split(step.split("\n", 1)[0].replace("--name demo", f"--name {name}"))
            done = subprocess.run(
                [sys.executable, "-m", "hercc", *argv],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                timeout=120,
                check=False,
            )
            got.append(f"$ hercc {shlex.join(argv)}\n{done.stdout}{done.stderr}")
    finally:
        persistent.down_lab(name)
        assert netns_with(topology.prefix_for_lab(name)) == []
    assert _steady("".join(got), name) == _steady(transcript, "demo")
