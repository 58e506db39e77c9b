"""The enterprise L2 kinds (bridge, vxlan, vlan, port) through plan/apply, without a kernel.

The desired resources of reference.herc's alpha; the reader on canned netlink
snapshots (ports of our bridges read, never owned); the differ (a VNI or
remote change is a replacement, "-/+", a port's bridge an in-place update);
conflicts (a missing port, a name that is not ours); and the exact netlink
requests the executor sends, both as it names them and as pyroute2's
arguments (golden: tests/golden/netlink/, HERCC_UPDATE_GOLDEN=1).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hercc import ir
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.plan.diff import diff
from hercc.plan.executor.link_requests import link_kwargs
from hercc.plan.node_service import conflicts
from hercc.resources.action import Action
from hercc.resources.model import OWNER_ALIAS, Resource, state_of
from hercc.resources.naming import Naming
from hercc.state.netlink import Address, Link, NsSnapshot
from hercc.state.reader import StateReader
from tests.conftest import EXAMPLES
from tests.goldentools import match_golden
from tests.test_executor import NODE, rig
from tests.test_state import FakeNetlink, FakeSysctl, FakeWireGuard

GOLDEN = Path(__file__).resolve().parent / "golden" / "netlink"
L2 = ("bridge", "vxlan", "vlan", "port")
HOST = "(host)"
ALIAS = f"{OWNER_ALIAS}:{NODE}"


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir


def links_of(model: ir.IR, node: str = "alpha", naming: Naming | None = None) -> list[Resource]:
    return [
        r
        for r in desired_state(model, node, naming)
        if r.kind in L2 or r.address.startswith("address.(host)")
    ]


def test_desired_links_of_alpha(model: ir.IR) -> None:
    got = {r.address: (dict(r.attrs), r.parent) for r in links_of(model)}
    assert got == {
        "bridge.(host)/br-hq": ({"up": True}, None),  # named by vxlan dc1, no block
        "bridge.(host)/br-lan": ({"up": True}, None),
        "port.(host)/eth2": ({"bridge": "br-lan"}, "bridge.(host)/br-lan"),
        "port.(host)/eth3": ({"bridge": "br-lan"}, "bridge.(host)/br-lan"),
        "vxlan.(host)/vx-dc1": (
            {
                "vni": 100,
                "local": "192.0.2.10",
                "remote": "192.0.2.200",
                "port": 4789,
                "mtu": 1450,
                "bridge": "br-hq",
                "up": True,
            },
            "bridge.(host)/br-hq",
        ),
        "vlan.(host)/vl-office": ({"parent": "eth1", "vlan_id": 42, "up": True}, None),
        "address.(host)/vl-office/172.30.42.1/24": ({}, "vlan.(host)/vl-office"),
    }
    # the links of other nodes stay there; a lab node's live in its underlay namespace
    assert not [r for r in links_of(model, "beta") if r.kind in L2]
    lab = links_of(model, naming=replace(Naming(), links_netns="lab-n-alpha"))
    assert {r.id.split("/")[0] for r in lab} == {"lab-n-alpha"}


def _snapshot() -> NsSnapshot:
    vxlan = (
        ("IFLA_VXLAN_GROUP", "192.0.2.200"),
        ("IFLA_VXLAN_ID", 100),
        ("IFLA_VXLAN_LINK", 2),
        ("IFLA_VXLAN_LOCAL", "192.0.2.10"),
        ("IFLA_VXLAN_PORT", 4789),
    )
    return NsSnapshot(
        HOST,
        links=(
            Link(1, "lo", None, None, 65536, True),
            Link(2, "eth0", "veth", None, 1500, True),
            Link(3, "eth1", "veth", None, 1500, True),
            Link(4, "eth2", "veth", None, 1500, True, master=6),
            Link(5, "eth3", "veth", None, 1500, True, master=9),  # in a bridge not ours
            Link(6, "br-lan", "bridge", ALIAS, 1500, True),
            Link(7, "vx-dc1", "vxlan", ALIAS, 1450, True, master=8, data=vxlan),
            Link(8, "br-hq", "bridge", ALIAS, 1450, False),
            Link(9, "docker0", "bridge", None, 1500, True),
            Link(10, "vl-office", "vlan", ALIAS, 1500, True, 3, HOST, data=(("IFLA_VLAN_ID", 42),)),
        ),
        addresses=(Address(10, "172.30.42.1/24"), Address(2, "192.0.2.10/32")),
    )


def _read(snap: NsSnapshot) -> Any:
    reader = StateReader(FakeNetlink([snap]), FakeWireGuard({}), FakeSysctl({}))
    return reader.read(NODE, [], also=[HOST])


def test_reader_reads_links_and_only_the_ports_of_our_bridges() -> None:
    live = _read(_snapshot())
    got = {a: (dict(r.attrs), r.parent) for a, r in live.state.items()}
    assert got == {
        "bridge.(host)/br-lan": ({"up": True}, None),
        "bridge.(host)/br-hq": ({"up": False}, None),
        "port.(host)/eth2": ({"bridge": "br-lan"}, "bridge.(host)/br-lan"),
        "vxlan.(host)/vx-dc1": (
            {
                "vni": 100,
                "local": "192.0.2.10",
                "remote": "192.0.2.200",
                "port": 4789,
                "mtu": 1450,
                "bridge": "br-hq",
                "up": True,
                "dev": "eth0",
            },
            "bridge.(host)/br-hq",
        ),
        "vlan.(host)/vl-office": ({"parent": "eth1", "vlan_id": 42, "up": True}, None),
        "address.(host)/vl-office/172.30.42.1/24": ({}, "vlan.(host)/vl-office"),
    }
    # a port is attached, never owned: its name stays foreign, and so do the others
    assert {"(host)/eth2", "(host)/eth3", "(host)/docker0", "(host)/eth0"} <= live.foreign


def test_plan_against_the_live_links(model: ir.IR) -> None:
    desired = state_of(links_of(model))
    live = dict(_read(_snapshot()).state)
    plan = diff(desired, live)
    got = {c.address: (c.action, c.forces, c.replaced_with) for c in plan.changes}
    assert got == {
        "bridge.(host)/br-hq": (Action.UPDATE, (), None),  # brought up again
        "port.(host)/eth3": (Action.CREATE, (), None),
    }
    # a VNI, a remote, a local or a port change replaces the VXLAN: "-/+"
    for name, value in (("vni", 200), ("remote", "192.0.2.201"), ("local", "192.0.2.9")):
        vx = live["vxlan.(host)/vx-dc1"]
        moved = {**live, vx.address: replace(vx, attrs={**vx.attrs, name: value})}
        (change,) = [c for c in diff(desired, moved).changes if c.address == vx.address]
        assert (change.action, change.forces) == (Action.REPLACE, (name,))
    # a port moved to another bridge is moved in place; one no longer wanted is detached
    wrong = {**live, "port.(host)/eth2": replace(live["port.(host)/eth2"], attrs={"bridge": "x"})}
    (change,) = [c for c in diff(desired, wrong).changes if c.address == "port.(host)/eth2"]
    assert change.action is Action.UPDATE
    without = {a: r for a, r in desired.items() if r.kind != "port"}
    dropped = [c for c in diff(without, live).changes if c.address == "port.(host)/eth2"]
    assert [c.action for c in dropped] == [Action.DELETE]


def test_conflicts_missing_ports_and_foreign_names(model: ir.IR) -> None:
    plan = diff(state_of(links_of(model)), {})
    problems = conflicts(plan, frozenset({"(host)/eth2", "(host)/vx-dc1"}))
    assert problems == [
        "interface vx-dc1 exists in namespace (host) and is not Hercules' (no hercules alias)",
        "interface eth3 (a port of bridge br-lan) does not exist in namespace (host): "
        "ports are attached, never created",
    ]


# --------------------------------------------------------------------------- the requests

INDEXES = {"eth0": 2, "eth1": 3, "eth2": 4, "eth3": 5, "br-lan": 6, "vx-dc1": 7, "br-hq": 8}
INDEXES |= {"vl-office": 10}


def _requests(model: ir.IR, tmp_path: Path) -> dict[str, Any]:
    """What the executor sends to create alpha's links, then to delete them."""
    r = rig(tmp_path)
    r.system.holding[(HOST, "192.0.2.10")] = "eth0"
    plan = diff(state_of(links_of(model)), {})
    for c in plan.changes:
        assert c.after is not None and c.after.kind in (*L2, "address")
        r.executor.create(c.after)
    created = list(r.system.calls)
    r.system.calls.clear()
    for c in reversed(plan.changes):
        assert c.after is not None
        r.executor.delete(c.after)
    out: dict[str, Any] = {}
    for phase, calls in (("create", created), ("delete", list(r.system.calls))):
        out[phase] = [
            {
                "call": what,
                "args": list(args),
                **(
                    {"pyroute2": ["link", args[1], link_kwargs(args[1], args[2], INDEXES.get)]}
                    if what == "link"
                    else {}
                ),
            }
            for what, args in calls
        ]
    return out


def test_netlink_requests_golden(model: ir.IR, tmp_path: Path) -> None:
    text = json.dumps(_requests(model, tmp_path), indent=2, sort_keys=True) + "\n"
    match_golden({"alpha.json": text}, GOLDEN)
    vlan = [
        c["pyroute2"]
        for c in _requests(model, tmp_path)["create"]
        if c["call"] == "link" and c["args"][2].get("kind") == "vlan"
    ]
    # the 802.1Q sub-interface, exactly: on eth1 (index 3), id 42
    assert vlan == [
        ["link", "add", {"ifname": "vl-office", "kind": "vlan", "link": 3, "vlan_id": 42}]
    ]


def test_update_and_failed_creation(model: ir.IR, tmp_path: Path) -> None:
    r = rig(tmp_path)
    vx = state_of(links_of(model))["vxlan.(host)/vx-dc1"]
    down = replace(vx, attrs={**vx.attrs, "up": False, "bridge": None, "mtu": 1400})
    r.executor.update(down, vx, ["bridge", "mtu", "up"])
    assert r.system.calls == [
        ("link", (HOST, "set", {"ifname": "vx-dc1", "master": "br-hq", "mtu": 1450, "state": "up"}))
    ]
    with pytest.raises(Exception, match="vni cannot change in place"):
        r.executor.update(vx, vx, ["vni"])
    # the alias cannot be set: the new device goes again, and the error is typed
    r = rig(tmp_path)
    r.system.fail["link set vx-dc1"] = "EPERM"
    from hercc.diagnostics import OperationError

    with pytest.raises(OperationError, match="EPERM"):
        r.executor.create(vx)
    assert [args[1] for _, args in r.system.calls] == ["add", "set", "del"]


def test_links_netns_is_an_option_of_nodes(tmp_path: Path) -> None:
    import io

    from hercc.cli import main as cli

    args = cli.parser().parse_args(["plan", "s.herc", "--node", "a", "--links-netns", "lab-n-a"])
    assert args.links_netns == "lab-n-a"
    spec = tmp_path / "spec.herc"
    spec.write_text(
        "network prod { range 10.20.0.0/16 }\n"
        "node a { network prod; endpoint 192.0.2.10:51820 }\n"
        "gateway gw1 { address 203.0.113.1; listen 80; tunnel 7443 }\n"
    )
    out, err = io.StringIO(), io.StringIO()
    argv = ["apply", str(spec), "--gateway", "gw1", "--links-netns", "x"]
    assert cli.main(argv, out, err) == 2
    assert "--links-netns is for nodes" in err.getvalue()


def test_a_vxlan_over_ipv6(tmp_path: Path) -> None:
    """Its addresses go in vxlan_local6 and vxlan_group6, and are read back from them."""
    r = rig(tmp_path)
    attrs = {"vni": 7, "local": "2001:db8::1", "remote": "2001:db8::2", "port": 4789}
    vx = Resource("vxlan", f"{HOST}/vx-six", {**attrs, "mtu": 1450, "bridge": None, "up": True})
    r.executor.create(vx)
    assert r.system.calls[0] == (
        "link",
        (
            HOST,
            "add",
            {
                "ifname": "vx-six",
                "kind": "vxlan",
                "vxlan_id": 7,
                "vxlan_local6": "2001:db8::1",
                "vxlan_group6": "2001:db8::2",
                "vxlan_port": 4789,
                "mtu": 1450,
            },
        ),
    )
    data = (
        ("IFLA_VXLAN_GROUP6", "2001:db8::2"),
        ("IFLA_VXLAN_ID", 7),
        ("IFLA_VXLAN_LOCAL6", "2001:db8::1"),
        ("IFLA_VXLAN_PORT", 4789),
    )
    snap = NsSnapshot(HOST, links=(Link(3, "vx-six", "vxlan", ALIAS, 1450, True, data=data),))
    (live,) = _read(snap).state.values()
    assert {k: live.attrs[k] for k in attrs} == attrs
