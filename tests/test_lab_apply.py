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
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from hercc.cli import main as cli
from hercc.lab import harness, nodes, persistent, topology
from hercc.lab.naming import lab_naming
from hercc.lab.overlay import block_changes
from hercc.lab.persistent.statefile import alive, lab_dir, state_file
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.state.links import vlan_unavailable_reason
from hercc.sysio.procfs import proc_start_time
from tests.conftest import EXAMPLES
from tests.labtools import lab, netns_with, wireguard_go_of

REFERENCE = EXAMPLES / "reference.herc"
QUICKSTART = EXAMPLES / "quickstart.herc"
REASON = harness.missing_requirements((*harness.TOOLS, "sysctl"))
RUN = f"p{os.getpid()}"
UP_ERR: dict[str, str] = {}  # lab name -> what its `lab up` wrote to stderr


def started(spec: Path, name: str) -> Iterator[persistent.LabState]:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    persistent.down_lab(name)  # a leftover of a crashed run with this pid
    prefix = topology.prefix_for_lab(name)
    try:
        code, _, err = lab("up", "--name", name, str(spec))
        assert code == 0, err
        UP_ERR[name] = err
        yield persistent.load_state(name)
    finally:
        state = persistent.load_state(name)
        probes = [p for h in state.hosts for p in nodes.running_probes(state.apply_dir, h.node)]
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
        assert probes and not [p for p, start in probes if proc_start_time(p) == start]
        assert netns_with(prefix) == []
        assert wireguard_go_of(prefix + "w") == []
        assert [s for s in os.listdir("/var/run/wireguard") if s.startswith(prefix + "w")] == []
        assert not state_file(name).exists()
        assert not lab_dir(name).exists()


def without_web(tmp: Path, port: int = 51821) -> Path:
    """reference.herc without workload web (and its service shop), network port `port`."""
    text = REFERENCE.read_text(encoding="utf-8")
    text = re.sub(r"\nworkload web \{.*?\}\n", "\n", text, flags=re.S)
    text = re.sub(r"\nservice shop \{.*?\n\}\n", "\n", text, flags=re.S)
    text = text.replace("port      51820 ", f"port      {port} ", 1)
    assert "workload web" not in text and f"port      {port}" in text
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
        tunnels = {gw: name for n, gw, name in topo.tunnels if n == node}
        naming = lab_naming("hx", node, mine, tunnels)
        ids = {r.address for r in desired_state(model, node, naming)}
        member = topo.member(node, "prod")
        assert f"netns.{member.ns}" in ids
        assert f"wireguard.{member.ns}/{member.wg_if}" in ids
        assert {f"wireguard.{member.ns}/{name}" for name in tunnels.values()} <= ids
        for w in (w for w in topo.workloads if w.node == node):
            assert f"netns.{w.ns}" in ids
            assert f"veth.{member.ns}/{w.member_if}" in ids
    # a running lab keeps its WireGuard names; a new member takes a free one
    kept = {("gamma", "prod"): "hxw7"}
    again = topology.topology_of(model, "hx", kept)
    assert again.member("gamma", "prod").wg_if == "hxw7"
    names = [m.wg_if for m in again.members]
    assert len(set(names)) == len(names)


def test_a_running_lab_keeps_its_ports_and_nat_blocks(tmp_path: Path) -> None:
    """Nodes that stay keep their bridge port and NAT addresses; new ones take free ones."""
    before = topology.topology_of(compile_spec(str(QUICKSTART)).ir, "hx")
    assert [(h.node, h.port) for h in before.hosts] == [
        ("edge1", "p0"),
        ("edge2", "p1"),
        ("home", "p2"),
    ]
    running = {h.node: h for h in before.hosts}
    after = topology.topology_of(compile_spec(str(grown(tmp_path))).ir, "hx", running=running)
    hosts = {h.node: h for h in after.hosts}
    assert hosts["edge1"] is running["edge1"] and hosts["home"] is running["home"]
    assert (hosts["cabin"].port, hosts["cabin"].address) == ("p3", "100.64.0.6/30")
    assert hosts["cabin"].router_outside == "198.18.0.2/32"
    # the drop rules of a removed `unreachable` link go; the ends' namespaces stay
    ref = REFERENCE.read_text(encoding="utf-8")
    linked = topology.topology_of(compile_spec(str(REFERENCE)).ir, "hx")
    assert {b.ns for b in linked.blocks} == {"hx-r-delta", "hx-n-beta"}
    unlinked = tmp_path / "unlinked.herc"
    assert "link delta beta { unreachable }" in ref
    unlinked.write_text(ref.replace("link delta beta { unreachable }", ""), encoding="utf-8")
    model = compile_spec(str(unlinked)).ir
    again = topology.topology_of(model, "hx", running={h.node: h for h in linked.hosts})
    state = SimpleNamespace(blocks=list(linked.blocks))
    assert block_changes(state, again.blocks, []) == [("hx-n-beta", None), ("hx-r-delta", None)]  # type: ignore[arg-type]


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
    assert out.count("No changes. Your gateway matches the spec.") == 2
    assert out.endswith(f"No changes. Every node of lab {name!r} matches the spec.\n")
    # vlan office of alpha: left out, and said so, exactly where this kernel has no 8021q
    why = vlan_unavailable_reason()
    office = [f"alpha: vlan.{p}-n-alpha/vl-office: {why}"] if why is not None else []
    assert ref.left_out == office
    assert [line for line in office if f"  {line}\n" in UP_ERR[name]] == office
    assert [f"  {line}" for line in office] == [
        line for line in out.splitlines() if line.startswith("  alpha: vlan.")
    ]
    assert ("Left out of the lab" in out) == bool(office)
    code, planned, err = lab("plan", "--name", name, str(REFERENCE), "--json")
    assert code == 0, err
    assert [f"{x['node']}: {x['what']}" for x in json.loads(planned)["left_out"]] == office
    code, status, err = lab("status", "--name", name)
    assert code == 0, err
    assert [
        line.split("left out", 1)[1].strip() for line in status.splitlines() if "left out" in line
    ] == office

    changed = without_web(tmp_path)
    code, out, err = lab("plan", "--name", name, str(changed), "--detailed-exitcode")
    assert code == 2, err
    assert out.splitlines()[-1] == (
        f"Lab {name!r}: 1 to add, 4 to change, 30 to destroy on 2 of 4 nodes and 2 of 2 gateways."
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
        f"  - nft.{x}/inet/hercules-gateways",  # and its tunnels to both gateways
        f"  - probe.{x}/",  # and their probes
    ):
        assert line in gamma, line
    assert gamma.count(f"  - wireguard.{x}/") == 2 == gamma.count(f"  - probe.{x}/")
    assert "Plan: 1 to add, 1 to change, 28 to destroy." in gamma  # bpf: 4 gone, 1 replaced
    for gw in ("gw-eu", "gw-us"):  # gamma's peer goes, HAProxy loses the shop backends
        block = out.split(f"# gateway {gw}\n", 1)[1].split("\n# ", 1)[0]
        assert f"  ~ haproxy.{p}-g-{gw}/{gw}" in block and "  - peer." in block
        assert "Plan: 0 to add, 1 to change, 1 to destroy." in block

    code, out, err = lab("plan", "--name", name, str(changed), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"] == {"add": 1, "change": 4, "destroy": 30}
    assert sorted(data["gateways"]) == ["gw-eu", "gw-us"]
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
        ("gamma", "wireguard", "delete"),
        ("gamma", "peer", "delete"),
        ("gamma", "nft", "delete"),
        ("gamma", "probe", "delete"),
        ("gamma", "bpf", "delete"),
        ("gamma", "bpf", "replace"),  # wg-prod's: its namespace's routes changed
    }

    code, out, err = lab("apply", "--name", name, str(changed))
    assert code == 0, err
    assert (
        "Apply complete: 1 added, 4 changed, 30 destroyed on 2 nodes (delta, gamma) "
        "and 2 gateway(s) (gw-eu, gw-us)." in err
    )
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
    assert "Apply complete: 30 added, 4 changed, 1 destroyed" in err  # bpf: 1 replaced
    code, out, err = lab("plan", "--name", name, str(REFERENCE), "--detailed-exitcode")
    assert code == 0, out + err
    # web is back, with a new server: the gateways' health checks (every 5 s) take it back in
    deadline = time.monotonic() + 30
    while True:
        code, out, err = lab("check", "--name", name, "--json")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert code == 0, out
    assert "web" in {r["from"] for r in json.loads(out)["results"]}
    assert {p["answer"] for p in json.loads(out)["public"] if p["kind"] == "https"} == {"web"}


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


def grown(tmp: Path) -> Path:
    """quickstart without edge2, with a new nat node `cabin` running workload `notes`."""
    text = QUICKSTART.read_text(encoding="utf-8")
    text = text.replace("node edge2 {\n  network  demo\n  endpoint 192.0.2.12\n}\n", "")
    assert "node edge2" not in text
    text += "\nnode cabin {\n  network demo\n  nat\n}\n\nworkload notes {\n  node cabin\n}\n"
    path = tmp / "grown.herc"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.live
def test_a_lab_grows_and_shrinks(quick: persistent.LabState, tmp_path: Path) -> None:
    """A spec that adds a nat node with a workload and removes another node: planned, applied."""
    name, p = quick.name, quick.prefix
    spec = grown(tmp_path)
    code, out, err = lab("plan", "--name", name, str(spec), "--detailed-exitcode")
    assert code == 2, err
    underlay = out.split("# underlay\n", 1)[1].split("\n# node ", 1)[0]
    assert f"  + node cabin (nat, behind {p}-r-cabin; namespace {p}-n-cabin, bridge port p3)" in (
        underlay
    )
    assert f"  - node edge2 (public 192.0.2.12; namespace {p}-n-edge2, bridge port p1)" in underlay
    assert (
        "# node cabin (new)\n" in out and "# node edge2 (removed: its overlay is destroyed)" in out
    )
    assert f"  + netns.{p}-w-notes" in node_block(out, "cabin (new)")
    assert f"  - netns.{p}-x-edge2-demo" in node_block(
        out, "edge2 (removed: its overlay is destroyed)"
    )
    assert "Underlay: 1 node(s) to add, 0 to replace, 1 to remove." in out
    code, out, err = lab("plan", "--name", name, str(spec), "--json")
    data = json.loads(out)
    assert code == 0 and data["no_changes"] is False
    assert data["underlay"]["nodes"] == [
        {"node": "cabin", "action": "create", "forces": []},
        {"node": "edge2", "action": "delete", "forces": []},
    ]

    code, out, err = lab("apply", "--name", name, str(spec))
    assert code == 0, err
    code, out, err = lab("check", "--name", name, "--json")
    assert code == 0, out
    assert {"notes", "cabin@demo", "blog"} <= {r["from"] for r in json.loads(out)["results"]}
    code, out, err = lab("plan", "--name", name, str(spec), "--detailed-exitcode")
    assert code == 0, out + err
    assert out.endswith(f"No changes. Every node of lab {name!r} matches the spec.\n")
    assert f"{p}-n-edge2" not in netns_with(p) and f"{p}-r-cabin" in netns_with(p)
    assert wireguard_go_of(p + "w") and all(
        i.node != "edge2" for i in persistent.load_state(name).interfaces
    )
    code, out, _ = lab("status", "--name", name)
    assert code == 0, out

    # a moved endpoint re-creates its node, and only that node's underlay
    moved = tmp_path / "moved.herc"
    moved.write_text(spec.read_text().replace("192.0.2.11", "192.0.2.21"), encoding="utf-8")
    code, out, err = lab("apply", "--name", name, str(moved))
    assert code == 0, err
    assert (
        f"-/+ node edge1 (public 192.0.2.21; namespace {p}-n-edge1, bridge port p1)"
        "  # forces replacement: endpoint (192.0.2.11 -> 192.0.2.21)"
    ) in out
    assert "# node edge1 (re-created: its " in out
    # its peers start new sessions with it: the old instance's would be dropped
    home = node_block(out, "home")
    assert f"-/+ peer.{p}-x-home-demo/" in home and "# replaced with node edge1" in home
    code, out, err = lab("check", "--name", name)
    assert code == 0, out
    code, out, err = lab("plan", "--name", name, str(moved), "--detailed-exitcode")
    assert code == 0, out + err


def with_psk(tmp: Path) -> Path:
    path = tmp / "psk.herc"
    text = QUICKSTART.read_text(encoding="utf-8")
    path.write_text(text.replace("  range6 fd42:42::/48\n", "  range6 fd42:42::/48\n  psk on\n"))
    return path


def preshared_keys(state: persistent.LabState) -> dict[tuple[str, str], str]:
    """(node, peer public key) -> its preshared key as `wg show` prints it."""
    out = {}
    for i in state.interfaces:
        if i.gateway:  # a tunnel to a gateway: no preshared key
            continue
        done = subprocess.run(
            ["ip", "netns", "exec", i.ns, "wg", "show", i.name, "preshared-keys"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        for line in done.stdout.splitlines():
            peer, psk = line.split()
            out[(i.node, peer)] = psk
    return out


@pytest.mark.live
def test_psk_on_is_planned_and_applied(quick: persistent.LabState, tmp_path: Path) -> None:
    spec = with_psk(tmp_path)
    code, out, err = lab("plan", "--name", quick.name, str(spec), "--detailed-exitcode")
    assert code == 2, out + err
    assert "preshared_key" in out and "Plan: 0 to add, 2 to change" in node_block(out, "edge1")
    code, out, err = lab("apply", "--name", quick.name, str(spec))
    assert code == 0, err
    keys = preshared_keys(persistent.load_state(quick.name))
    assert len(keys) == 6 and "(none)" not in keys.values()
    assert len(set(keys.values())) == 3  # one per pair, the same at both ends
    psk_dir = Path(quick.keys_dir) / "psk" / "demo"
    assert sorted(p.name for p in psk_dir.iterdir()) == [
        "edge1--edge2.psk",
        "edge1--home.psk",
        "edge2--home.psk",
    ]
    code, out, err = lab("plan", "--name", quick.name, str(spec), "--detailed-exitcode")
    assert code == 0, out + err
    code, out, _ = lab("check", "--name", quick.name)
    assert code == 0, out


@pytest.mark.live
def test_up_with_psk_on(tmp_path: Path) -> None:
    spec = with_psk(tmp_path)
    for state in started(spec, RUN + "k"):
        keys = preshared_keys(state)
        assert len(keys) == 6 and "(none)" not in keys.values()
        code, out, _ = lab("check", "--name", state.name)
        assert code == 0, out
