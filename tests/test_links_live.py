"""Enterprise L2 links planned and applied on live namespaces: bridges, ports, VXLAN, VLAN.

Needs root and iproute2. Every name is this run's: the namespaces start with
`hl<pid>-`. `<p>a` stands in for node alpha's host namespace (the node
service's `links_netns`), `<p>b` for the far end of the VXLAN, joined to it by a
veth on 192.0.2.0/24 (alpha at .10, the far end at .200); `<p>ha` and `<p>hb`
are hosts on the enterprise segment at either end (10.77.0.1 and .2), `<p>ha`
plugged into alpha through `eth2`, an existing interface the spec names as a
bridge port. The far end is built by hand (bridge, VXLAN, veth to `<p>hb`), like
a data centre's switch; alpha only through plan/apply. Teardown deletes this
run's namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hercc.cli.views.plan import render_plan
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.plan.node_service import (
    LiveSystem,
    NodeContext,
    Planned,
    apply_plan,
    live_system,
    naming_for,
    plan_node,
)
from hercc.resources.action import Action
from hercc.resources.model import state_of
from hercc.state.links import vlan_unavailable_reason

pytestmark = pytest.mark.live

P = f"hl{os.getpid() % 10000}-"
HOST, FAR, HA, HB = f"{P}a", f"{P}b", f"{P}ha", f"{P}hb"

SPEC = """
network prod {{ range 10.20.0.0/16 }}
node alpha {{ network prod; endpoint 192.0.2.10:51820 }}
enterprise dc {{
  vxlan dc1 {{ node alpha; vni {vni}; local 192.0.2.10; remote 192.0.2.200; port 4789; bridge br-lan }}
  {bridge}
}}
"""
BRIDGE = "bridge lan { node alpha; ports eth2 }"


def sh(*argv: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    done = subprocess.run(full, capture_output=True, text=True, timeout=30, check=False)
    assert not check or done.returncode == 0, f"{' '.join(full)}: {done.stderr.strip()}"
    return done


def ping(src: str, dst: str) -> bool:
    return sh("ping", "-c", "1", "-W", "1", dst, ns=src, check=False).returncode == 0


@pytest.fixture
def net() -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (network namespaces)")
    made: list[str] = []
    try:
        for ns in (HOST, FAR, HA, HB):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "ul", "netns", HOST, "type", "veth", "peer", "ul", "netns", FAR)
        sh("ip", "link", "add", "eth2", "netns", HOST, "type", "veth", "peer", "eth0", "netns", HA)
        sh("ip", "link", "add", "e0", "netns", FAR, "type", "veth", "peer", "eth0", "netns", HB)
        for ns, cmds in {
            HOST: ["addr add 192.0.2.10/24 dev ul", "link set ul up", "link set eth2 up"],
            FAR: [
                "addr add 192.0.2.200/24 dev ul",
                "link set ul up",
                "link add brx type bridge",
                "link add vx0 type vxlan id 100 local 192.0.2.200 remote 192.0.2.10 dstport 4789",
                "link set vx0 master brx up",
                "link set e0 master brx up",
                "link set brx up",
            ],
            HA: ["addr add 10.77.0.1/24 dev eth0", "link set eth0 up"],
            HB: ["addr add 10.77.0.2/24 dev eth0", "link set eth0 up"],
        }.items():
            for cmd in cmds:
                sh("ip", "-n", ns, *cmd.split())
        yield
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _plan(tmp: Path, io: LiveSystem, vni: int = 100, bridge: str = BRIDGE) -> Planned:
    spec = tmp / f"dc-{vni}-{bool(bridge)}.herc"
    spec.write_text(SPEC.format(vni=vni, bridge=bridge))
    model = compile_spec(str(spec), use_lock=False).ir
    naming = replace(naming_for(P), links_netns=HOST)
    ctx = NodeContext.of("alpha", naming, None, tmp / "state", io)
    # only the links: the node's overlay (WireGuard) is test_apply_live's business
    desired = state_of(
        [r for r in desired_state(model, "alpha", naming) if r.id.startswith(f"{HOST}/")]
    )
    return plan_node(ctx, desired)


def _apply(tmp: Path, io: LiveSystem, planned: Planned) -> None:
    naming = replace(naming_for(P), links_netns=HOST)
    apply_plan(NodeContext.of("alpha", naming, None, tmp / "state", io), planned.plan, None)


def test_bridge_and_vxlan_end_to_end(net: None, tmp_path: Path) -> None:
    io = live_system()
    first = _plan(tmp_path, io)
    assert {c.address: c.action for c in first.plan.changes} == {
        f"bridge.{HOST}/br-lan": Action.CREATE,
        f"port.{HOST}/eth2": Action.CREATE,
        f"vxlan.{HOST}/vx-dc1": Action.CREATE,
    }
    _apply(tmp_path, io, first)
    assert _plan(tmp_path, io).plan.no_changes
    live = _plan(tmp_path, io).live
    assert live[f"vxlan.{HOST}/vx-dc1"].attrs["dev"] == "ul"  # the interface holding `local`
    assert live[f"vxlan.{HOST}/vx-dc1"].attrs["mtu"] == 1450  # 1500 less the overhead
    # hosts on both sides of the L2 segment
    assert ping(HA, "10.77.0.2") and ping(HB, "10.77.0.1")

    # a VNI change is a replacement, applied; the port is left attached
    moved = _plan(tmp_path, io, vni=200)
    (change,) = moved.plan.changes
    assert (change.address, change.action, change.forces) == (
        f"vxlan.{HOST}/vx-dc1",
        Action.REPLACE,
        ("vni",),
    )
    assert f"-/+ vxlan.{HOST}/vx-dc1" in render_plan(moved.plan)
    assert "# forces replacement" in render_plan(moved.plan)
    _apply(tmp_path, io, moved)
    after = _plan(tmp_path, io, vni=200)
    assert after.plan.no_changes and after.live[f"vxlan.{HOST}/vx-dc1"].attrs["vni"] == 200
    assert not ping(HA, "10.77.0.2")  # the far end still says 100
    _far_vxlan(200)
    assert ping(HA, "10.77.0.2")

    # a hand edit (the port pulled out of the bridge) shows, and apply repairs it
    sh("ip", "-n", HOST, "link", "set", "eth2", "nomaster")
    repaired = _plan(tmp_path, io, vni=200)
    assert [(c.address, c.action) for c in repaired.plan.changes] == [
        (f"port.{HOST}/eth2", Action.CREATE)
    ]
    _apply(tmp_path, io, repaired)
    assert _plan(tmp_path, io, vni=200).plan.no_changes

    # the bridge block gone: its port is detached, never deleted
    dropped = _plan(tmp_path, io, vni=200, bridge="")
    actions = {c.address: c.action for c in dropped.plan.changes}
    assert actions[f"port.{HOST}/eth2"] is Action.DELETE
    _apply(tmp_path, io, dropped)
    assert sh("ip", "-n", HOST, "link", "show", "eth2").returncode == 0
    assert "master" not in sh("ip", "-n", HOST, "-o", "link", "show", "eth2").stdout


def _far_vxlan(vni: int) -> None:
    """The far end's VXLAN, made again with `vni`."""
    sh("ip", "-n", FAR, "link", "del", "vx0", check=False)
    sh(
        *f"ip -n {FAR} link add vx0 type vxlan id {vni} local 192.0.2.200 remote 192.0.2.10 "
        "dstport 4789".split()
    )
    sh("ip", "-n", FAR, "link", "set", "vx0", "master", "brx", "up")


def test_vlan_live(net: None, tmp_path: Path) -> None:
    reason = vlan_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    spec = tmp_path / "vlan.herc"
    spec.write_text(
        SPEC.format(
            vni=100, bridge="vlan office { node alpha; parent eth2; id 42; address 172.30.42.1/24 }"
        )
    )
    model = compile_spec(str(spec), use_lock=False).ir
    naming = replace(naming_for(P), links_netns=HOST)
    io = live_system()
    ctx = NodeContext.of("alpha", naming, None, tmp_path / "state", io)
    desired = state_of(
        [r for r in desired_state(model, "alpha", naming) if r.id.startswith(f"{HOST}/")]
    )
    planned = plan_node(ctx, desired)
    apply_plan(ctx, planned.plan, None)
    assert plan_node(ctx, desired).plan.no_changes
    shown = sh("ip", "-n", HOST, "-d", "link", "show", "vl-office").stdout
    assert "vlan protocol 802.1Q id 42" in shown
    sh("ip", "-n", HA, "link", "add", "link", "eth0", "name", "v42", "type", "vlan", "id", "42")
    sh("ip", "-n", HA, "addr", "add", "172.30.42.2/24", "dev", "v42")
    sh("ip", "-n", HA, "link", "set", "v42", "up")
    assert ping(HA, "172.30.42.1")
