"""The lab harness: a compiled spec brought up live in network namespaces.

The harness builds the underlay; every node's overlay is planned and applied
with `hercc apply`'s code (hercc.lab.nodes), in two passes. Topology, mesh and
desired-state tests run anywhere; live tests need root, iproute2, nftables,
wireguard-go, wg and sysctl, and skip with the reason otherwise.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc import ir
from hercc.lab import Lab, LabError, naive_mesh, new_prefix, nodes, topology_of, with_keys
from hercc.lab.harness import WG_RUN_DIR, missing_requirements
from hercc.lab.naming import KeyFiles
from hercc.pipeline import compile_spec
from hercc.plan.node_service import live_system
from hercc.resources.action import Action
from hercc.sysio.procfs import proc_start_time
from tests.conftest import EXAMPLES, compile_text, write
from tests.labtools import netns_names, wireguard_go_of

QUICKSTART = str(EXAMPLES / "quickstart.herc")

# Two networks over the same nodes (plus n2 in red only), public endpoints in
# different /24s, a nat-public link cut on the underlay, one workload per network.
TWO_NETWORKS = """
network red {
  range  10.51.0.0/16
  range6 fd51:51::/48
  port   51820
}
network blue {
  range  10.52.0.0/16
  range6 fd52:52::/48
  port   51821
}
node p1 {
  network  red, blue
  endpoint 192.0.2.21
}
node p2 {
  network  red, blue
  endpoint 198.51.100.22
}
node n1 {
  network red, blue
  nat
}
node n2 {
  network red
  nat
}
link n2 p2 { unreachable }
workload wr {
  node    n1
  network red
}
workload wb {
  node    p2
  network blue
}
"""

REASON = missing_requirements()
NO = 0.5  # seconds to wait for an answer that must not come


class FakeKeys:
    """A KeySource with made-up public keys, and a KeyLookup without private ones."""

    def private_key_file(self, node: str) -> Path:
        return Path(f"/nonexistent/{node}.key")

    def public_key(self, node: str) -> str:
        return f"{node}-pub="

    def private_key(self, node: str) -> str | None:
        return None

    def psk(self, network: str, a: str, b: str) -> str | None:
        return None


def quickstart_ir() -> ir.IR:
    return naive_mesh(compile_spec(QUICKSTART, use_lock=False).ir)


def two_networks_ir(tmp: Path) -> ir.IR:
    return compile_spec(write(tmp, "two.herc", TWO_NETWORKS), use_lock=False).ir


def endpoints(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """network -> [(namespace name, overlay address)] for every member and workload."""
    out: dict[str, list[tuple[str, str]]] = {}
    for m in lab.topology.members:
        for a in m.addresses:
            out.setdefault(m.network, []).append((f"{m.node}@{m.network}", a.split("/")[0]))
    for w in lab.topology.workloads:
        for addr in (w.address, w.address6):
            if addr is not None:
                out[w.network].append((w.name, addr))
    return out


def failed_pings(lab: Lab) -> list[str]:
    failed = []
    for net, ends in endpoints(lab).items():
        for src in sorted({name for name, _ in ends}):
            for dst, addr in ends:
                if not lab.ping(src, addr, timeout=2):
                    failed.append(f"{net}: {src} -> {dst} {addr}")
    return failed


def assert_gone(prefix: str, pids: list[int], wg_ifs: list[str]) -> None:
    assert [n for n in netns_names() if n.startswith(prefix + "-")] == []
    assert [p for p in pids if Path(f"/proc/{p}").exists()] == []
    assert wireguard_go_of(prefix + "w") == []
    assert [i for i in wg_ifs if (WG_RUN_DIR / f"{i}.sock").exists()] == []


# ---------------------------------------------------------------- no root needed


def test_plan_names_carry_prefix_and_fit() -> None:
    model = quickstart_ir()
    a, b = topology_of(model, "ha1"), topology_of(model, "hb2")
    assert set(a.namespaces()).isdisjoint(b.namespaces())
    assert all(n.startswith("ha1-") for n in a.namespaces())
    # underlay, 3 nodes, 1 router, the gateway, internet, 3 members, 1 workload
    assert len(a.namespaces()) == 11
    wg_ifs = [m.wg_if for m in a.members]
    assert len(set(wg_ifs)) == len(wg_ifs)
    assert all(i.startswith("ha1") and len(i) <= 15 for i in wg_ifs)
    assert topology_of(model, new_prefix()).prefix.startswith("h")


def test_plan_underlay_addresses(tmp_path: Path) -> None:
    p = topology_of(naive_mesh(two_networks_ir(tmp_path)), "hx")
    hosts = {h.node: h for h in p.hosts}
    assert hosts["p1"].address == "192.0.2.21/32" and hosts["p1"].gateway is None
    assert hosts["p2"].public_ip == "198.51.100.22"
    n1, n2 = hosts["n1"], hosts["n2"]
    assert n1.router_ns == "hx-r-n1" and n1.gateway is not None
    assert ipaddress.ip_address(n1.public_ip) in ipaddress.ip_network("198.18.0.0/15")
    assert n1.public_ip != n2.public_ip and n1.address != n2.address
    # the cut link n2 -- p2: dropped in n2's router and in p2's namespace
    blocks = {b.ns: b for b in p.blocks}
    assert blocks["hx-r-n2"].router and blocks["hx-r-n2"].peers == ("198.51.100.22",)
    assert not blocks["hx-n-p2"].router and blocks["hx-n-p2"].peers == (n2.public_ip,)
    member = p.member("p1", "blue")
    assert [a.rsplit("/", 1)[1] for a in member.addresses] == ["16", "48"]
    assert member.listen_port == 51821


def test_plan_rejects_what_the_lab_cannot_build(tmp_path: Path) -> None:
    clash = compile_text(
        tmp_path,
        "network n { range 10.1.0.0/16 }\nnode a { network n; endpoint 198.18.0.1 }\n",
    ).ir
    with pytest.raises(LabError, match="collides"):
        topology_of(clash, "hx")
    # the checker refuses this spec (E-code); the lab checks again, for hand-made IRs
    model = two_networks_ir(tmp_path)
    p1 = model.node("p1")
    nets = tuple(dataclasses.replace(m, listen_port=51820) for m in p1.networks)
    same_port = dataclasses.replace(
        model,
        nodes=tuple(
            dataclasses.replace(n, networks=nets) if n.name == "p1" else n for n in model.nodes
        ),
    )
    with pytest.raises(LabError, match="both listen on port"):
        topology_of(same_port, "hx")
    with pytest.raises(LabError, match="prefix"):
        topology_of(quickstart_ir(), "Bad-Prefix")


def test_naive_mesh_quickstart() -> None:
    model = quickstart_ir()
    peers = {n.name: {p.node: p for p in n.networks[0].peers} for n in model.nodes}
    assert set(peers["edge1"]) == {"edge2", "home"}
    assert peers["home"]["edge1"].allowed_ips == ("10.42.0.0/16", "fd42:42::/48")
    assert peers["home"]["edge2"].allowed_ips == ("10.42.1.0/24", "fd42:42:0:1::/64")
    assert peers["edge1"]["home"].endpoint is None and peers["edge1"]["home"].keepalive_s is None
    assert peers["home"]["edge1"].keepalive_s == 25
    assert [n.networks[0].forwarding for n in model.nodes] == [True, False, False]


def test_naive_mesh_routes_cut_links_through_the_relay(tmp_path: Path) -> None:
    model = naive_mesh(two_networks_ir(tmp_path))
    red = {n.name: {p.node for p in n.networks[-1].peers} for n in model.nodes}
    assert red["n2"] == {"p1"} and "n2" not in red["p2"] and "n2" in red["p1"]


def test_first_pass_withholds_what_dials() -> None:
    model = with_keys(quickstart_ir(), FakeKeys())
    topo = topology_of(model, "hx")
    by_node = {n.node: n for n in nodes.lab_nodes(model, topo, FakeKeys())}
    home = by_node["home"]
    ns, ifname = topo.member("home", "demo").ns, topo.member("home", "demo").wg_if
    peers = {r.id: r for r in home.desired.values() if r.kind == "peer"}
    tunnel = next(name for node, gw, name in topo.tunnels if (node, gw) == ("home", "gw1"))
    assert set(peers) == {
        f"{ns}/{ifname}/edge1-pub=",
        f"{ns}/{ifname}/edge2-pub=",
        f"{ns}/{tunnel}/gateway:gw1-pub=",  # its tunnel to the gateway
    }
    peers = {"edge1": peers[f"{ns}/{ifname}/edge1-pub="]}
    assert peers["edge1"].attrs["endpoint"] == "192.0.2.11:51820"
    assert peers["edge1"].attrs["keepalive"] == 25
    assert peers["edge1"].attrs["allowed_ips"] == ["10.42.0.0/16", "fd42:42::/48"]
    # pass 1: every peer known, nobody dials (no tunnel probes yet); everything else as desired
    first = nodes.withheld(home.desired)
    probes = {a for a, r in home.desired.items() if r.kind == "probe"}
    assert probes == {f"probe.{ns}/{tunnel}"}
    assert first.keys() == home.desired.keys() - probes
    for address, r in first.items():
        if r.kind != "peer":
            assert r == home.desired[address]
            continue
        assert "endpoint" not in r.attrs and r.attrs["keepalive"] is None
        assert r.attrs["allowed_ips"] == home.desired[address].attrs["allowed_ips"]
    assert nodes.dialled(first) == {}
    # the handshakes `up` waits for: a nat node dials both, the relay the other public node
    assert nodes.dialled(home.desired) == {
        (ns, ifname): {"edge1-pub=", "edge2-pub="},
        (ns, tunnel): {"gateway:gw1-pub="},
    }
    edge1 = topo.member("edge1", "demo")
    assert nodes.dialled(by_node["edge1"].desired) == {(edge1.ns, edge1.wg_if): {"edge2-pub="}}


# ---------------------------------------------------------------- live


@pytest.fixture(scope="module")
def quick_lab() -> Iterator[Lab]:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    with Lab(quickstart_ir()) as lab:
        yield lab


@pytest.fixture(scope="module")
def two_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    with Lab(naive_mesh(two_networks_ir(tmp_path_factory.mktemp("two")))) as lab:
        yield lab


@pytest.mark.live
def test_quickstart_everyone_pings_everyone(quick_lab: Lab) -> None:
    assert failed_pings(quick_lab) == []


@pytest.mark.live
def test_the_overlay_is_two_applies_per_node(quick_lab: Lab) -> None:
    """Pass 1 creates everything but the dialling; pass 2 updates peers in place and starts
    the tunnels' probes."""
    lab = quick_lab
    assert set(lab.plans) == {"edge1", "edge2", "home"}
    for node, (first, second) in lab.plans.items():
        assert {c.action for c in first.changes} == {Action.CREATE}, node
        kinds = {c.resource.kind for c in first.changes}
        assert {"netns", "wireguard", "address", "peer"} <= kinds and "probe" not in kinds, node
        probes = [c for c in second.changes if c.resource.kind == "probe"]
        assert [c.action for c in probes] == [Action.CREATE] * (node == "home"), node
        assert second.change == len(second.changes) - len(probes) > 0 and second.destroy == 0
        for c in second.changes:
            if c.resource.kind == "probe":
                continue
            assert c.resource.kind == "peer" and {n for n, _, _ in c.changed} <= {
                "endpoint",
                "keepalive",
            }, (node, c)
    # the relay waits to be dialled by home (no endpoint), dials edge2
    assert len(lab.plans["edge1"][1].changes) == 1
    # planned once more against the live overlay: nothing left to do
    io = live_system()
    for n in nodes.lab_nodes(lab.model, lab.topology, KeyFiles(lab.keys)):
        again, _ = nodes.plan_node(n, n.desired, lab.node_dir, io)
        assert again.no_changes, (n.node, again.changes)
    # the namespaces are the executor's (each node's registry), the PIDs its records
    assert set(lab.overlay_namespaces()) == {m.ns for m in lab.topology.members} | {
        w.ns for w in lab.topology.workloads
    }
    tunnels = [name for _, _, name in lab.topology.tunnels]
    assert sorted(lab.wireguard_go()) == sorted([m.wg_if for m in lab.topology.members] + tunnels)


@pytest.mark.live
def test_workloads_are_private(quick_lab: Lab) -> None:
    lab = quick_lab
    router_ip = lab.topology.host("home").public_ip
    # a workload reaches no underlay address ...
    for addr in ("192.0.2.11", "192.0.2.12", router_ip):
        assert not lab.ping("blog", addr, timeout=NO), addr
        assert not lab.ping("home@demo", addr, timeout=NO), addr
    # ... and nothing on the underlay reaches a workload
    for src in ("edge1", "home", "router:home"):
        for addr in ("10.42.2.2", "fd42:42:0:2::2", "10.42.0.1"):
            assert not lab.ping(src, addr, timeout=NO), (src, addr)
    # while the underlay itself works, through the NAT too
    assert lab.ping("edge1", "192.0.2.12") and lab.ping("home", "192.0.2.11")
    assert lab.ping("edge1", router_ip)
    assert not lab.ping("edge1", lab.topology.host("home").address.split("/")[0], timeout=NO)


@pytest.mark.live
def test_nat_node_dials_out_through_its_router(quick_lab: Lab) -> None:
    show = quick_lab.exec(
        "edge1@demo", ["wg", "show", quick_lab.topology.member("edge1", "demo").wg_if]
    )
    assert f"endpoint: {quick_lab.topology.host('home').public_ip}:" in show.stdout


@pytest.mark.live
def test_two_networks_everyone_pings_everyone(two_lab: Lab) -> None:
    assert failed_pings(two_lab) == []


@pytest.mark.live
def test_networks_are_isolated(two_lab: Lab) -> None:
    lab = two_lab
    blue = {name: addr for name, addr in endpoints(lab)["blue"]}
    red_sources = sorted({name for name, _ in endpoints(lab)["red"]})
    for src in red_sources:
        for dst in ("p2@blue", "wb"):
            assert not lab.ping(src, blue[dst], timeout=NO), (src, dst)
    # even with a route into the WireGuard interface, red's peers refuse blue's range
    red_p1 = lab.topology.member("p1", "red")
    route = ["ip", "route", "add", "10.52.0.0/16", "dev", red_p1.wg_if]
    lab.exec("p1@red", route, check=True)
    try:
        assert not lab.ping("p1@red", blue["p2@blue"], timeout=NO)
        assert not lab.ping("p1@red", blue["wb"], timeout=NO)
    finally:
        lab.exec("p1@red", ["ip", "route", "del", "10.52.0.0/16"], check=True)


@pytest.mark.live
def test_unreachable_link_is_cut_on_the_underlay(two_lab: Lab) -> None:
    lab = two_lab
    n2_out = lab.topology.host("n2").public_ip
    assert not lab.ping("n2", "198.51.100.22", timeout=NO)
    assert not lab.ping("p2", n2_out, timeout=NO)
    assert lab.ping("n2", "192.0.2.21") and lab.ping("p1", n2_out)
    assert lab.ping("p1", "198.51.100.22")  # different /24s, one segment


@pytest.mark.live
def test_routing_pass_peers_work_live(tmp_path: Path) -> None:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    model = two_networks_ir(tmp_path)
    if not any(m.peers for n in model.nodes for m in n.networks):
        pytest.skip("the routing pass fills no peers yet")
    with Lab(model) as lab:
        assert failed_pings(lab) == []


@pytest.mark.live
def test_down_removes_everything_and_is_idempotent() -> None:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    lab = Lab(quickstart_ir())
    try:
        lab.up()
        prefix, pids = lab.prefix, list(lab.pids)
        wg_ifs = [m.wg_if for m in lab.topology.members] + [t[2] for t in lab.topology.tunnels]
        # the 3 nodes' networks, and home's tunnel to the gateway
        assert len(pids) == 4 and all(Path(f"/proc/{p}").exists() for p in pids)
        assert set(lab.namespaces) | set(lab.overlay_namespaces()) == set(lab.topology.namespaces())
        assert set(lab.topology.namespaces()) <= set(netns_names())
        probes = [p for n in lab.node_names() for p in nodes.running_probes(lab.node_dir, n)]
        assert len(probes) == 1  # home's tunnel's ping of the gateway
    finally:
        lab.down()
    assert_gone(prefix, pids, wg_ifs)
    assert not [p for p, start in probes if proc_start_time(p) == start]
    assert not lab.workdir.exists()
    lab.down()
    assert lab.namespaces == [] and lab.pids == [] and lab.overlay_namespaces() == []


@pytest.mark.live
def test_exceptions_tear_down(monkeypatch: pytest.MonkeyPatch) -> None:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    lab = Lab(quickstart_ir())
    with pytest.raises(RuntimeError, match="boom"), lab:
        pids = list(lab.pids)
        raise RuntimeError("boom")
    assert_gone(lab.prefix, pids, [m.wg_if for m in lab.topology.members])

    # one node's apply fails (the executor's failure hook) after the others' succeeded
    failing = Lab(quickstart_ir())
    home = failing.topology.member("home", "demo")
    monkeypatch.setenv("HERCC_FAIL_AT", f"address.{home.ns}/{home.wg_if}/{home.addresses[0]}")
    with pytest.raises(LabError, match="node home: apply failed and was rolled back"):
        failing.up()
    assert failing.namespaces == [] and failing.pids == []
    assert_gone(failing.prefix, [], [m.wg_if for m in failing.topology.members])
    assert not failing.workdir.exists()


@pytest.mark.live
def test_the_tun_keeps_working_after_moving_namespaces(quick_lab: Lab) -> None:
    """wireguard-go runs in the node's underlay namespace, its TUN in the network's."""
    m = quick_lab.topology.member("edge2", "demo")
    host = quick_lab.topology.host("edge2")
    links = quick_lab.exec("edge2@demo", ["ip", "-br", "link"], check=True).stdout
    assert m.wg_if in links
    sockets = quick_lab.exec("edge2", ["ss", "-Hnlup"], check=True).stdout
    assert f":{m.listen_port}" in sockets and "wireguard-go" in sockets
    assert m.wg_if not in quick_lab.exec("edge2", ["ip", "-br", "link"], check=True).stdout
    assert host.ns == f"{quick_lab.prefix}-n-edge2"
