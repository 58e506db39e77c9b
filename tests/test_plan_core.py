"""Plan core: desired state from the IR, the diff, its rendering, saved plans, `hercc diff`.

Golden files under tests/golden/plan/ hold the exact expected text of a plan;
HERCC_UPDATE_GOLDEN=1 rewrites them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from hercc import ir
from hercc.build_dir import read_build
from hercc.cli import main as cli
from hercc.cli.views.plan import NO_CHANGES, plan_to_json, render_plan
from hercc.diagnostics import OperationError
from hercc.keys import init_keys, load_public_keys, psk_path, read_private_key
from hercc.pipeline import compile_spec
from hercc.plan.desired import (
    PSK_UNKNOWN,
    DirKeys,
    desired_state,
)
from hercc.plan.diff import Plan, diff
from hercc.plan.saved import (
    StalePlanError,
    check_fresh,
    live_fingerprint,
    save_plan,
    sniff_plan,
)
from hercc.resources.action import Action
from hercc.resources.canonical import (
    canonical_allowed_ips,
    canonical_endpoint,
    canonical_private_key,
)
from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.model import ORDER, Resource, State, state_of
from hercc.resources.naming import Naming

from .conftest import EXAMPLES

GOLDEN = Path(__file__).resolve().parent / "golden" / "plan"
UPDATE = os.environ.get("HERCC_UPDATE_GOLDEN") == "1"
REFERENCE = EXAMPLES / "reference.herc"
NODES = ("alpha", "beta", "delta", "gamma")


def _fake_key(seed: str) -> str:
    """32 bytes of base64, as a key file holds (not clamped: the desired state clamps)."""
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


# Fixed, fake but well-formed secrets: the tests check they never leak.
PRIVATE = {n: _fake_key(f"private key of {n}") for n in (*NODES, "eps")}
OLD_KEY = _fake_key("an old private key")
PSK = _fake_key("a preshared key")


class FakeKeys:
    def __init__(self, private: dict[str, str] | None = None, psk: str | None = PSK) -> None:
        self.private = PRIVATE if private is None else private
        self.psk_value = psk
        self.psk_calls: list[tuple[str, str, str]] = []

    def private_key(self, node: str) -> str | None:
        return self.private.get(node)

    def psk(self, network: str, a: str, b: str) -> str | None:
        self.psk_calls.append((network, a, b))
        return self.psk_value


# ---------------------------------------------------------------- helpers


def spec_copy(tmp: Path, name: str, edits: Sequence[tuple[str, str]] = ()) -> str:
    """reference.herc (and its lock) copied to tmp/name, with text replacements applied."""
    text = REFERENCE.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    shutil.copy(str(REFERENCE) + ".lock", str(path) + ".lock")
    return str(path)


def model_of(path: str) -> ir.IR:
    return compile_spec(path).ir


def state(model: ir.IR, node: str, keys: FakeKeys | None = None) -> State:
    return state_of(desired_state(model, node, Naming(), keys))


def node_plan(old: ir.IR, new: ir.IR, node: str) -> Plan:
    return diff(state(new, node), state(old, node))


ADD_NODE = (
    "node delta {",
    "node eps {\n  network prod\n  endpoint 203.0.113.9:51820\n}\n\nnode delta {",
)
PORT = ("port      51820", "port      51821")
ENDPOINT = ("endpoint 198.51.100.7:51820", "endpoint 198.51.100.8:51820")
NO_WEB = [
    ("workload web { node gamma }\n", ""),
    ("service shop {\n  workload web\n", "service shop {\n  workload api\n"),
]


@pytest.fixture(scope="module")
def reference() -> ir.IR:
    return model_of(str(REFERENCE))


# ---------------------------------------------------------------- desired state


def test_desired_state_of_every_reference_node(reference: ir.IR) -> None:
    for node in NODES:
        resources = desired_state(reference, node, Naming(), FakeKeys())
        st = state_of(resources)
        assert [r.address for r in resources] == sorted(st)
        assert {r.kind for r in resources} <= set(ORDER)
        assert "netns.herc-prod" in st
        wg = st["wireguard.herc-prod/wg-prod"]
        assert wg.parent == "netns.herc-prod"
        assert wg.attrs["listen_port"] == 51820 and wg.attrs["mtu"] == 1420
        assert wg.attrs["up"] is True
        assert wg.attrs["private_key"] == private_key_fingerprint(PRIVATE[node])
        assert wg.sensitive == {"private_key"}
        assert not wg.forces_new  # a listen port or an MTU changes in place
        for r in resources:  # every parent is in the state, and comes earlier in ORDER
            if r.parent is not None:
                assert r.parent in st, r.address
                assert ORDER[st[r.parent].kind] < ORDER[r.kind]
        peers = [r for r in resources if r.kind == "peer" and r.parent == wg.address]
        m = next(m for m in reference.node(node).networks if m.network == "prod")
        assert sorted(str(p.label) for p in peers) == sorted(p.node for p in m.peers)
        assert all("name" not in p.attrs for p in peers)  # a label, not state
        for p in peers:
            assert p.parent == wg.address
            assert p.sensitive == {"preshared_key"}
            assert p.attrs["allowed_ips"] == sorted(p.attrs["allowed_ips"])
            assert p.attrs["preshared_key"] is None  # the network has psk off
        dumped = json.dumps([r.to_data() for r in resources])
        for secret in PRIVATE.values():
            assert secret not in dumped


def test_desired_state_of_gamma_in_detail(reference: ir.IR) -> None:
    st = state(reference, "gamma")
    assert sorted(st) == [
        "address.herc-prod/gw-gw-eu/100.127.0.3/32",  # web's tunnel addresses (shop)
        "address.herc-prod/gw-gw-us/100.127.1.2/32",
        "address.herc-prod/hv-web/fe80::1/64",
        "address.herc-prod/wg-prod/10.20.2.1/16",
        "address.herc-prod/wg-prod/fd42:20:0:3::1/48",
        "address.herc-w-web/eth0/10.20.2.2/32",
        "address.herc-w-web/eth0/fd42:20:0:3::2/128",
        "bpf.herc-prod/gw-gw-eu/tc-ingress",  # netflow: accounting on gateway tunnels
        "bpf.herc-prod/gw-gw-us/tc-ingress",
        "bpf.herc-prod/hv-web/tc-ingress",  # TC behind XDP
        "bpf.herc-prod/hv-web/xdp",  # fastpath xdp
        "bpf.herc-prod/wg-prod/tc-ingress",  # a layer-3 device: TC
        "exporter.gamma",  # monitor netflow: the node's flow exporter (state/exporter_proc.py)
        "netns.herc-prod",
        "netns.herc-w-web",
        "nft.herc-prod/inet/hercules-gateways",
        "peer.herc-prod/gw-gw-eu/unknown-key:gw-eu",
        "peer.herc-prod/gw-gw-us/unknown-key:gw-us",
        "peer.herc-prod/wg-prod/unknown-key:beta",
        "probe.herc-prod/gw-gw-eu",  # the tunnels' liveness probes (state/probes.py)
        "probe.herc-prod/gw-gw-us",
        "route.herc-prod/10.20.2.2/32",
        "route.herc-prod/100.127.0.1/32",
        "route.herc-prod/100.127.1.1/32",
        "route.herc-prod/fd42:20:0:3::2/128",
        "route.herc-prod/fd68:6572:6375::1/128",
        "route.herc-w-web/0.0.0.0/0",
        "route.herc-w-web/::/0",
        "sysctl.herc-prod/net.ipv4.ip_forward",
        "sysctl.herc-prod/net.ipv6.conf.all.forwarding",
        "veth.herc-prod/hv-web",
        "wireguard.herc-prod/gw-gw-eu",
        "wireguard.herc-prod/gw-gw-us",
        "wireguard.herc-prod/wg-prod",
    ]
    veth = st["veth.herc-prod/hv-web"]
    assert dict(veth.attrs) == {"peer_netns": "herc-w-web", "peer_ifname": "eth0", "mtu": 1420}
    assert veth.forces_new == {"peer_netns", "peer_ifname"}
    assert dict(st["route.herc-w-web/0.0.0.0/0"].attrs) == {"dev": "eth0", "via": "10.20.2.1"}
    assert dict(st["route.herc-prod/10.20.2.2/32"].attrs) == {"dev": "hv-web", "via": None}
    assert st["address.herc-w-web/eth0/10.20.2.2/32"].parent == veth.address
    assert st["wireguard.herc-prod/wg-prod"].attrs["private_key"] is None  # no keys given
    assert st["sysctl.herc-prod/net.ipv4.ip_forward"].attrs == {"value": "1"}
    assert dict(st["exporter.gamma"].attrs) == {
        "protocol": "ipfix",
        "collectors": ["192.0.2.99:2055"],
        "active_timeout_ms": 60_000,
        "idle_timeout_ms": 15_000,
        "sampling": 1,
    }
    assert st["exporter.gamma"].forces_new == set(st["exporter.gamma"].attrs)


def test_sysctls_only_where_forwarding_or_workloads(reference: ir.IR) -> None:
    forwards = {n.name: n.networks[0].forwarding for n in reference.nodes}
    hosts = {w.node for w in reference.workloads}
    for node in NODES:
        has = "sysctl.herc-prod/net.ipv4.ip_forward" in state(reference, node)
        assert has == (forwards[node] or node in hosts), node
    assert "sysctl.herc-prod/net.ipv4.ip_forward" not in state(
        dataclasses.replace(reference, workloads=()), "gamma"
    )


def test_peer_ids_use_public_keys_and_psk_fingerprints(tmp_path: Path) -> None:
    path = spec_copy(tmp_path, "psk.herc", [("keepalive 25s\n", "keepalive 25s\n  psk on\n")])
    keys_dir = str(tmp_path / "keys")
    init_keys(compile_spec(path).ir, keys_dir)
    pubkeys = load_public_keys(keys_dir)
    model = compile_spec(path, pubkeys=pubkeys).ir
    fake = FakeKeys()
    st = state(model, "alpha", fake)
    peers = [r for r in st.values() if r.kind == "peer"]
    assert {r.id for r in peers} == {f"herc-prod/wg-prod/{pubkeys[str(p.label)]}" for p in peers}
    assert all(p.attrs["preshared_key"] == fingerprint(PSK) for p in peers)
    assert ("prod", "alpha", "beta") in fake.psk_calls
    # DirKeys reads the real private key and never creates a PSK.
    real = state_of(desired_state(model, "alpha", Naming(), DirKeys(keys_dir)))
    wg = real["wireguard.herc-prod/wg-prod"]
    private = read_private_key(keys_dir, "alpha")
    assert wg.attrs["private_key"] == private_key_fingerprint(private)
    assert private not in json.dumps([r.to_data() for r in real.values()])
    assert not os.path.exists(psk_path(keys_dir, "prod", "alpha", "beta"))
    peers = [r for r in real.values() if r.kind == "peer"]
    assert all(r.attrs["preshared_key"] == PSK_UNKNOWN for r in peers)  # wanted, not made


def test_naming_fits_interfaces_and_never_collides() -> None:
    naming = Naming()
    assert naming.netns("prod") == "herc-prod"
    assert naming.wg_ifname("laboratory-east") == "wg-laboratory-e"
    assert naming.workload_netns("web") == "herc-w-web"
    assert naming.veth_host("web") == "hv-web"
    assert naming.veth_workload("web") == "eth0"
    short = "a" * 12
    assert naming.veth_host(short) == "hv-" + short
    names = {naming.veth_host(w) for w in ("a" * 13, "a" * 14, "a" * 40, "abcd-x" * 5, short)}
    assert len(names) == 5
    assert all(len(n) <= 15 for n in names)


def test_colliding_names_are_an_error(reference: ir.IR) -> None:
    # Network "w-web" and workload "web" would both get the namespace herc-w-web.
    net = dataclasses.replace(reference.networks[0], name="w-web")
    nodes = tuple(
        dataclasses.replace(
            n, networks=tuple(dataclasses.replace(m, network="w-web") for m in n.networks)
        )
        for n in reference.nodes
    )
    workloads = tuple(dataclasses.replace(w, network="w-web") for w in reference.workloads)
    model = dataclasses.replace(reference, networks=(net,), nodes=nodes, workloads=workloads)
    with pytest.raises(OperationError, match="herc-w-web"):
        desired_state(model, "gamma", Naming())
    with pytest.raises(OperationError, match="not in the spec"):
        desired_state(reference, "nobody", Naming())


def test_a_build_directory_gives_back_the_ir(tmp_path: Path) -> None:
    from hercc.backends import render_files
    from hercc.writer import write_tree

    model = model_of(str(REFERENCE))
    write_tree(str(tmp_path / "out"), render_files(model, None))
    assert read_build(str(tmp_path / "out")).with_peers() == model
    with pytest.raises(OperationError, match="not a hercc build directory"):
        read_build(str(tmp_path))


# ---------------------------------------------------------------- diff and render


def test_identical_states_have_no_changes(reference: ir.IR) -> None:
    for node in NODES:
        plan = diff(state(reference, node), state(reference, node))
        assert plan.no_changes and plan.counts() == (0, 0, 0)
        assert render_plan(plan) == NO_CHANGES + "\n"
        assert plan_to_json(plan)["no_changes"] is True


def test_added_node_gives_every_other_node_one_peer(tmp_path: Path, reference: ir.IR) -> None:
    new = model_of(spec_copy(tmp_path, "new.herc", [ADD_NODE]))
    for node in NODES:
        plan = node_plan(reference, new, node)
        assert [(c.action, c.resource.kind, c.resource.label) for c in plan.changes] == [
            (Action.CREATE, "peer", "eps")
        ], node
        assert plan.counts() == (1, 0, 0)
        assert "Plan: 1 to add, 0 to change, 0 to destroy." in render_plan(plan)
    eps = diff(state(new, "eps"), {})  # eps is new: everything is created
    assert {c.action for c in eps.changes} == {Action.CREATE} and eps.add == len(state(new, "eps"))


def test_port_change_updates_the_interface_in_place(tmp_path: Path, reference: ir.IR) -> None:
    new = model_of(spec_copy(tmp_path, "new.herc", [PORT]))
    plan = node_plan(reference, new, "gamma")
    text = render_plan(plan)
    assert "  ~ wireguard.herc-prod/wg-prod\n      ~ listen_port = 51820 -> 51821\n" in text
    assert plan.counts() == (0, 1, 0)
    assert [c.action for c in plan.changes] == [Action.UPDATE]


def test_removed_workload_destroys_its_resources(tmp_path: Path, reference: ir.IR) -> None:
    new = model_of(spec_copy(tmp_path, "new.herc", NO_WEB))
    plan = node_plan(reference, new, "gamma")
    # the namespace's routes changed: its dataplane programs are new ones
    replaced = {c.address for c in plan.changes if c.action is Action.REPLACE}
    assert replaced == {"bpf.herc-prod/wg-prod/tc-ingress"}
    assert {c.action for c in plan.changes if c.address not in replaced} == {Action.DELETE}
    gone = {c.address for c in plan.changes if c.address not in replaced}
    for address in (
        "netns.herc-w-web",
        "veth.herc-prod/hv-web",
        "address.herc-w-web/eth0/10.20.2.2/32",
        "address.herc-w-web/eth0/fd42:20:0:3::2/128",
        "route.herc-w-web/0.0.0.0/0",
        "route.herc-prod/10.20.2.2/32",
        # gamma neither relays nor hosts a workload any more: no forwarding
        "sysctl.herc-prod/net.ipv4.ip_forward",
    ):
        assert address in gone
    old = state(reference, "gamma")
    veth = "veth.herc-prod/hv-web"
    web = {a for a, r in old.items() if r.parent == veth} | {veth, "netns.herc-w-web"}
    tunnels = {a for a in old if "/gw-" in a or "/100.127." in a or "/fd68:" in a} | {
        "nft.herc-prod/inet/hercules-gateways"
    }  # web was gamma's only exposed workload: its gateway tunnels go with it
    assert len(tunnels) == 14  # with their probes and accounting programs (netflow)
    assert gone == web | tunnels | {a for a in old if a.startswith("sysctl.")}
    assert "  - netns.herc-w-web\n" in render_plan(plan)
    assert node_plan(reference, new, "alpha").no_changes


def test_endpoint_change_updates_the_peer(tmp_path: Path, reference: ir.IR) -> None:
    new = model_of(spec_copy(tmp_path, "new.herc", [ENDPOINT]))
    plan = node_plan(reference, new, "alpha")
    text = render_plan(plan)
    assert (
        "  ~ peer.herc-prod/wg-prod/unknown-key:beta # beta\n"
        '      ~ endpoint = "198.51.100.7:51820" -> "198.51.100.8:51820"\n'
        "        # (3 unchanged attributes hidden)\n"
    ) in text
    assert text.endswith("Plan: 0 to add, 1 to change, 0 to destroy.\n")


def _with(r: Resource, **attrs: object) -> Resource:
    return dataclasses.replace(r, attrs={**r.attrs, **attrs})


def test_forces_new_replaces_with_children(reference: ir.IR) -> None:
    want = state(reference, "gamma")
    live = dict(want)
    veth = "veth.herc-prod/hv-web"
    live[veth] = _with(want[veth], peer_netns="herc-w-old")
    plan = diff(want, live)
    by = {c.address: c for c in plan.changes}
    assert by[veth].action == Action.REPLACE and by[veth].forces == ("peer_netns",)
    children = [a for a, r in want.items() if r.parent == veth]
    assert children and all(by[a].action == Action.REPLACE for a in children)
    assert all(by[a].replaced_with == veth for a in children)
    assert set(by) == {veth, *children}
    text = render_plan(plan)
    assert (
        "-/+ veth.herc-prod/hv-web\n"
        '      ~ peer_netns = "herc-w-old" -> "herc-w-web" # forces replacement\n'
    ) in text
    assert "-/+ route.herc-w-web/0.0.0.0/0\n        # replaced with veth.herc-prod/hv-web\n" in text
    n = 1 + len(children)
    assert plan.counts() == (n, 0, n)  # a replace is one add and one destroy
    assert text.endswith(f"Plan: {n} to add, 0 to change, {n} to destroy.\n")
    assert plan_to_json(plan)["resource_changes"][0]["actions"] == ["delete", "create"]


def test_sensitive_values_never_print(reference: ir.IR) -> None:
    want = state(reference, "alpha", FakeKeys())
    old_psk = _fake_key("an old preshared key")
    old_keys = FakeKeys({"alpha": OLD_KEY}, psk=old_psk)
    live = state(reference, "alpha", old_keys)
    plan = diff(want, live)
    text = render_plan(plan)
    assert "      ~ private_key = (sensitive)\n" in text
    for secret in (
        PRIVATE["alpha"],
        OLD_KEY,
        old_psk,
        private_key_fingerprint(OLD_KEY),
        private_key_fingerprint(PRIVATE["alpha"]),
    ):
        assert secret not in text
    data = json.dumps(plan_to_json(plan))
    assert "sha256:" not in data and PRIVATE["alpha"] not in data
    wg = next(c for c in plan_to_json(plan)["resource_changes"] if c["kind"] == "wireguard")
    assert wg["before"]["private_key"] is None and wg["after"]["private_key"] is None
    assert wg["changed"] == ["private_key"] and wg["sensitive"] == ["private_key"]
    created = diff(want, {})
    assert "      + private_key = (sensitive)\n" in render_plan(created)


def test_only_desired_attributes_are_compared(reference: ir.IR) -> None:
    want = state(reference, "beta")
    live = {a: _with(r, extra="reported by the kernel") for a, r in want.items()}
    assert diff(want, live).no_changes
    # lists and tuples are equal (live states come from JSON or from code)
    peer = next(a for a, r in want.items() if r.kind == "peer")
    live[peer] = _with(want[peer], allowed_ips=tuple(want[peer].attrs["allowed_ips"]))
    assert diff(want, live).no_changes
    # a label is never compared (the live side has none)
    live[peer] = dataclasses.replace(want[peer], label=None)
    assert diff(want, live).no_changes
    live[peer] = dataclasses.replace(want[peer], attrs={})  # attrs missing
    plan = diff(want, live)
    assert plan.changes[0].action == Action.UPDATE
    assert ("endpoint", None, want[peer].attrs["endpoint"]) in plan.changes[0].changed


def test_order_parents_first_on_create_children_first_on_delete(reference: ir.IR) -> None:
    full = state(reference, "gamma")
    created = diff(full, {})
    seen: list[str] = []
    for c in created.changes:
        assert c.action == Action.CREATE
        if c.resource.parent is not None:
            assert c.resource.parent in seen, c.address
        seen.append(c.address)
    kinds = [ORDER[c.resource.kind] for c in created.changes]
    assert kinds == sorted(kinds)
    destroyed = diff({}, full)
    seen = []
    for c in destroyed.changes:
        assert c.action == Action.DELETE
        assert all(full[a].parent != c.address for a in full if a not in seen), c.address
        seen.append(c.address)
    assert [c.address for c in destroyed.changes] == [c.address for c in created.changes][::-1]
    assert destroyed.counts() == (0, 0, len(full))
    # XDP (which accounts every packet) attached before the TC program behind it, detached after
    order = [c.address for c in created.changes]
    xdp, tc = "bpf.herc-prod/hv-web/xdp", "bpf.herc-prod/hv-web/tc-ingress"
    assert order.index(xdp) < order.index(tc)
    assert max(i for i, a in enumerate(order) if a.endswith("/xdp")) < min(
        i for i, a in enumerate(order) if a.endswith("/tc-ingress")
    )
    # a mixed plan: deletes (children first) before creates and updates (parents first)
    mixed = diff(state(reference, "alpha"), full)
    actions = [c.action for c in mixed.changes]
    last_delete = max(i for i, a in enumerate(actions) if a is Action.DELETE)
    assert actions.index(Action.CREATE) > last_delete


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text


def _mixed_plan(reference: ir.IR) -> tuple[State, State, Plan]:
    """All four actions on gamma: create, update (plain and sensitive), delete, replace."""
    want = state(reference, "gamma", FakeKeys())
    live = dict(want)
    wg = "wireguard.herc-prod/wg-prod"
    live[wg] = _with(want[wg], listen_port=51821, private_key=private_key_fingerprint(OLD_KEY))
    veth = "veth.herc-prod/hv-web"
    live[veth] = _with(want[veth], peer_netns="herc-w-old")
    peer = "peer.herc-prod/wg-prod/unknown-key:beta"
    del live[peer]
    gone = Resource(
        "peer",
        "herc-prod/wg-prod/unknown-key:zeta",
        {
            "endpoint": "192.0.2.99:51820",
            "allowed_ips": ["10.20.7.0/24"],
            "keepalive": None,
            "preshared_key": None,
        },
        sensitive=frozenset({"preshared_key"}),
        parent=wg,
    )
    live[gone.address] = gone
    return want, live, diff(want, live)


def test_golden_plan_text(reference: ir.IR) -> None:
    _, _, plan = _mixed_plan(reference)
    text = render_plan(plan)
    assert OLD_KEY not in text
    _golden("mixed.txt", text)
    _golden("mixed.json", ir.dumps(plan_to_json(plan)))


def test_labels_show_and_travel_but_never_compare(tmp_path: Path, reference: ir.IR) -> None:
    want = state(reference, "alpha")
    peer = "peer.herc-prod/wg-prod/unknown-key:beta"
    assert want[peer].label == "beta" and "name" not in want[peer].attrs
    relabelled = {**want, peer: dataclasses.replace(want[peer], label="someone else")}
    assert diff(want, relabelled).no_changes
    created = diff(want, {})
    assert f"  + {peer} # beta\n" in render_plan(created)
    by_address = {c["address"]: c for c in plan_to_json(created)["resource_changes"]}
    assert by_address[peer]["label"] == "beta"
    assert by_address["netns.herc-prod"]["label"] is None
    # a saved plan keeps the label (the executor finds a PSK by it); a resource
    # without one is stored as before (no "label" key: live fingerprints stay put)
    assert Resource.from_data(want[peer].to_data()) == want[peer]
    assert "label" not in want["netns.herc-prod"].to_data()
    path = str(tmp_path / "alpha.plan")
    save_plan(created, "alpha", {}, want, path)
    loaded = sniff_plan(path)
    assert loaded is not None
    assert loaded.desired[peer].label == "beta"
    assert next(c for c in loaded.plan.changes if c.address == peer).resource.label == "beta"


def test_private_keys_are_fingerprinted_as_a_device_stores_them(reference: ir.IR) -> None:
    raw = PRIVATE["alpha"]
    assert canonical_private_key(raw) != raw  # this fake key is not clamped
    fp = state(reference, "alpha", FakeKeys())["wireguard.herc-prod/wg-prod"].attrs["private_key"]
    # what a device reports after being given the key (it clamps it) compares equal
    assert fp == private_key_fingerprint(canonical_private_key(raw)) == private_key_fingerprint(raw)
    with pytest.raises(OperationError, match="node alpha: its private key is not 32 bytes"):
        state(reference, "alpha", FakeKeys({"alpha": "not a key"}))


# ---------------------------------------------------------------- saved plans


def test_saved_plan_round_trip_and_staleness(tmp_path: Path, reference: ir.IR) -> None:
    want, live, plan = _mixed_plan(reference)
    path = str(tmp_path / "gamma.plan")
    save_plan(plan, "gamma", live, want, path, spec="examples/reference.herc")
    data = json.loads(Path(path).read_text())
    assert data["format_version"] == 2 and data["node"] == "gamma"
    assert data["spec"] == "examples/reference.herc"
    assert data["live_fingerprint"] == live_fingerprint(live)
    assert PRIVATE["gamma"] not in Path(path).read_text()
    saved = sniff_plan(path)
    assert saved is not None
    assert saved.plan == plan
    assert saved.desired == want
    assert saved.node == "gamma" and saved.spec == "examples/reference.herc"
    assert render_plan(saved.plan) == render_plan(plan)
    check_fresh(saved, live)  # unchanged: fine
    # the same state rebuilt (other order, lists for tuples) has the same fingerprint
    rebuilt = {
        a: Resource.from_data(json.loads(json.dumps(live[a].to_data())))
        for a in sorted(live, reverse=True)
    }
    check_fresh(saved, rebuilt)
    moved = dict(live)
    wg = "wireguard.herc-prod/wg-prod"
    moved[wg] = _with(live[wg], listen_port=51999)
    with pytest.raises(StalePlanError) as info:
        check_fresh(saved, moved)
    assert isinstance(info.value, OperationError)
    assert "changed since" in str(info.value)
    assert live_fingerprint(moved) != live_fingerprint(live)


def test_sniff_plan_rejects_bad_plans(tmp_path: Path) -> None:
    bad = tmp_path / "bad.plan"
    bad.write_text('{"format_version": 99, "live_fingerprint": "sha256:0"}')
    with pytest.raises(OperationError, match="format version"):
        sniff_plan(str(bad))
    bad.write_text('{"format_version": 2, "live_fingerprint": "sha256:0", "node": "a"}')
    with pytest.raises(OperationError, match="malformed"):
        sniff_plan(str(bad))
    assert sniff_plan(str(tmp_path / "missing.plan")) is None  # not a plan: a spec to read


# ---------------------------------------------------------------- hercc diff


def run_diff_cli(*argv: str, err: io.StringIO | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["diff", *argv], out, err if err is not None else io.StringIO())
    return code, out.getvalue()


def _build(spec: str, out: str) -> str:
    from hercc.backends import render_files
    from hercc.writer import write_tree

    write_tree(out, render_files(compile_spec(spec).ir, None))
    return out


def test_hercc_diff_specs_and_build_dirs_agree(tmp_path: Path) -> None:
    old = spec_copy(tmp_path, "old.herc")
    new = spec_copy(tmp_path, "new.herc", [ADD_NODE, ENDPOINT, *NO_WEB])
    code, text = run_diff_cli(old, new)
    assert code == 2
    assert text.startswith("# node alpha\n")
    assert "# node eps\n" in text
    assert text.endswith("5 of 5 nodes differ. Plan: 27 to add, 4 to change, 32 to destroy.\n")
    _golden("diff_reference.txt", text)
    old_dir = _build(old, str(tmp_path / "build-old"))
    new_dir = _build(new, str(tmp_path / "build-new"))
    assert run_diff_cli(old_dir, new_dir) == (2, text)
    assert run_diff_cli(old, new_dir) == (2, text)
    code, js = run_diff_cli(old_dir, new_dir, "--json")
    assert code == 2 and json.loads(js) == json.loads(run_diff_cli(old, new, "--json")[1])
    assert json.loads(js)["summary"]["nodes_changed"] == 5


def test_hercc_diff_exit_codes_and_node_filter(tmp_path: Path) -> None:
    old = spec_copy(tmp_path, "old.herc")
    same = spec_copy(tmp_path, "same.herc")
    assert run_diff_cli(old, same) == (0, "No differences on 4 nodes.\n")
    code, text = run_diff_cli(old, same, "--node", "beta")
    assert code == 0
    assert text == f"# node beta\n{NO_CHANGES}\n\nNo differences on 1 node.\n"
    new = spec_copy(tmp_path, "new.herc", [PORT])
    assert run_diff_cli(old, new, "--node", "beta")[0] == 0  # its port is its endpoint's
    code, text = run_diff_cli(old, new, "--node", "gamma")
    assert code == 2 and "~ listen_port = 51820 -> 51821" in text and "# node alpha" not in text
    data = json.loads(run_diff_cli(old, same, "--json")[1])
    assert data["no_changes"] is True and data["nodes"] == {}
    err = io.StringIO()
    assert run_diff_cli(old, same, "--node", "nobody", err=err) == (1, "")
    assert err.getvalue() == f"hercc: error: node nobody is in neither {old} nor {same}\n"
    err = io.StringIO()
    assert run_diff_cli(old, str(tmp_path / "missing.herc"), err=err) == (1, "")
    assert "missing.herc: no such file" in err.getvalue()


def test_hercc_diff_with_keys(tmp_path: Path) -> None:
    old = spec_copy(tmp_path, "old.herc")
    keys_dir = str(tmp_path / "keys")
    init_keys(compile_spec(old).ir, keys_dir)
    assert run_diff_cli(old, old, "--keys", keys_dir)[0] == 0
    new = spec_copy(tmp_path, "new.herc", [ENDPOINT])
    code, text = run_diff_cli(old, new, "--keys", keys_dir)
    assert code == 2
    beta = load_public_keys(keys_dir)["beta"]
    assert f"  ~ peer.herc-prod/wg-prod/{beta} # beta\n" in text  # the label names the node
    assert read_private_key(keys_dir, "alpha") not in text


def test_nat_peers_have_no_endpoint_and_values_are_canonical(reference: ir.IR) -> None:
    st = state(reference, "alpha")
    nat = st["peer.herc-prod/wg-prod/unknown-key:delta"]
    assert "endpoint" not in nat.attrs  # learned from delta's handshakes: never compared
    assert st["peer.herc-prod/wg-prod/unknown-key:beta"].attrs["endpoint"] == "198.51.100.7:51820"
    live = dict(st)
    live[nat.address] = _with(nat, endpoint="203.0.113.77:40123")
    assert diff(st, live).no_changes
    assert canonical_endpoint("[fd00:0::1]:51820") == "[fd00::1]:51820"
    assert canonical_endpoint("vpn.example.com:51820") == "vpn.example.com:51820"
    assert canonical_allowed_ips(["10.0.0.1/8", "10.0.0.0/8", "fd00:0::/64"]) == [
        "10.0.0.0/8",
        "fd00::/64",
    ]
