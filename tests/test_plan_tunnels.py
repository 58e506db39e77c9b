"""A node's end of its gateway tunnels: desired state, live reader, executor, conflicts, lab names.

The gateway backends' golden spec (tests/golden/gateways/spec.herc) is the
model: beta runs web2 (network prod), exposed through gw-eu and gw-us; gamma
runs v6app (network six), IPv6 only, through gw-eu.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hercc import ir
from hercc.backends import nftables, render_all
from hercc.lab.naming import lab_naming
from hercc.lab.topology import topology_of
from hercc.plan.apply import ApplyFailed, Step, apply_steps
from hercc.plan.desired import desired_state
from hercc.plan.diff import diff
from hercc.plan.node_service import conflicts
from hercc.resources.action import Action
from hercc.resources.model import Resource, state_of
from hercc.resources.naming import Naming
from hercc.state.nftables import read_tables, tables_of
from tests.test_backends_gateway import KEYS, _model
from tests.test_executor import rig

NS = "herc-prod"
TABLE = f"nft.{NS}/inet/{nftables.TABLE}"


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return _model()


def tunnels_of(model: ir.IR, node: str, naming: Naming | None = None) -> dict[str, Resource]:
    st = state_of(desired_state(model, node, naming))
    return {a: r for a, r in st.items() if "/gw-" in a or a.startswith("nft.") or "/100.127." in a
            or "/fd68:" in a}  # fmt: skip


# ---------------------------------------------------------------- desired state


def test_beta_has_one_tunnel_per_gateway_in_its_network_namespace(model: ir.IR) -> None:
    got = tunnels_of(model, "beta")
    eu, us = (g for g in model.gateways)
    assert sorted(got) == sorted(
        [
            f"wireguard.{NS}/gw-gw-eu",
            f"address.{NS}/gw-gw-eu/100.127.0.5/32",
            f"route.{NS}/100.127.0.1/32",
            f"route.{NS}/fd68:6572:6375::1/128",
            f"peer.{NS}/gw-gw-eu/{KEYS['gateway:gw-eu']}",
            f"probe.{NS}/gw-gw-eu",
            f"wireguard.{NS}/gw-gw-us",
            f"address.{NS}/gw-gw-us/100.127.1.3/32",
            f"route.{NS}/100.127.1.1/32",
            f"peer.{NS}/gw-gw-us/{KEYS['gateway:gw-us']}",
            f"probe.{NS}/gw-gw-us",
            TABLE,
        ]
    )
    wg = got[f"wireguard.{NS}/gw-gw-eu"]
    assert "listen_port" not in wg.attrs  # the node dials: any port the device picks
    assert dict(wg.attrs) == {"mtu": 1420, "up": True, "private_key": None, "fwmark": None}
    assert wg.parent == f"netns.{NS}"
    peer = got[f"peer.{NS}/gw-gw-eu/{KEYS['gateway:gw-eu']}"]
    assert dict(peer.attrs) == {
        "endpoint": f"{eu.address}:{eu.tunnel}",
        "allowed_ips": ["100.127.0.1/32", "fd68:6572:6375::1/128"],
        "keepalive": 25,
        "preshared_key": None,
    }
    assert peer.label == "gateway gw-eu" and peer.parent == wg.address
    assert got[f"route.{NS}/100.127.1.1/32"].attrs == {"dev": "gw-gw-us", "via": None}
    assert us.name == "gw-us"


def test_the_table_is_the_build_file_and_its_attributes_describe_it(model: ir.IR) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    built = render_all(model, ["nftables"])["nodes/beta/nftables/prod.nft"]
    assert table.content == built  # one renderer, the same text under the default names
    assert table.attrs["rules"] == "forward=5 input=2 prerouting=2"
    assert f'\tcomment "hercules {table.attrs["digest"]}"\n' in built
    assert table.attrs["digest"].startswith("sha256:") and len(table.attrs["digest"]) == 23
    assert "content" in table.to_data() and Resource.from_data(table.to_data()) == table


def test_an_ipv6_only_tunnel_in_its_own_network(model: ir.IR) -> None:
    got = tunnels_of(model, "gamma")
    assert "address.herc-six/gw-gw-eu/fd68:6572:6375::2/128" in got
    assert "nft.herc-six/inet/hercules-gateways" in got
    assert not any(a.startswith(f"nft.{NS}") for a in got)


def test_unknown_gateway_keys_follow_the_nodes_convention() -> None:
    got = tunnels_of(_model(pubkeys=None), "beta")
    assert f"peer.{NS}/gw-gw-eu/unknown-key:gw-eu" in got


def test_the_content_is_no_state_a_changed_digest_is(model: ir.IR) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    live = Resource("nft", table.id, dict(table.attrs), parent=table.parent)
    assert diff({TABLE: table}, {TABLE: live}).no_changes
    edited = Resource("nft", table.id, {**table.attrs, "rules": "forward=6 input=1 prerouting=2"})
    [change] = diff({TABLE: table}, {TABLE: edited}).changes
    assert change.action is Action.UPDATE and [n for n, _, _ in change.changed] == ["rules"]


def test_lab_names_each_tunnel_from_the_pool(model: ir.IR) -> None:
    topo = topology_of(model, "hx")
    names = [name for _, _, name in topo.tunnels]
    members = {m.wg_if for m in topo.members}
    assert len(set(names)) == len(names) == 5 and not members & set(names)
    mine = {gw: name for node, gw, name in topo.tunnels if node == "beta"}
    naming = lab_naming("hx", "beta", {m.network: m.wg_if for m in topo.members
                                       if m.node == "beta"}, mine)  # fmt: skip
    assert naming.gw_ifname("gw-eu") == mine["gw-eu"]
    got = state_of(desired_state(model, "beta", naming))
    table = got["nft.hx-x-beta-prod/inet/hercules-gateways"]
    assert table.content is not None and f'iifname "{mine["gw-eu"]}"' in table.content
    assert f"wireguard.hx-x-beta-prod/{mine['gw-us']}" in got


# ---------------------------------------------------------------- live reader (parsing)

RULESET = {
    "nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "hercules-gateways", "handle": 1}},
        {"chain": {"family": "inet", "table": "hercules-gateways", "name": "input"}},
        {"chain": {"family": "inet", "table": "hercules-gateways", "name": "forward"}},
        {"rule": {"family": "inet", "table": "hercules-gateways", "chain": "input"}},
        {"rule": {"family": "inet", "table": "hercules-gateways", "chain": "forward"}},
        {"rule": {"family": "inet", "table": "hercules-gateways", "chain": "forward"}},
        {"table": {"family": "ip", "name": "theirs", "handle": 2}},
        {"chain": {"family": "ip", "table": "theirs", "name": "empty"}},
    ]
}
TEXT = (
    "table inet hercules-gateways {\n"
    '\tcomment "hercules sha256:0123456789abcdef"\n'
    "\tchain input {\n\t}\n}\n"
    "table ip theirs {\n\tchain empty {\n\t}\n}\n"
)


class FakeNft:
    def __init__(self, json_text: str, text: str) -> None:
        self.json_text, self.text = json_text, text
        self.asked: list[tuple[str, bool]] = []

    def ruleset(self, ns: str, as_json: bool) -> str:
        self.asked.append((ns, as_json))
        return self.json_text if as_json else self.text


def test_the_reader_returns_ours_and_names_the_rest() -> None:
    nft = FakeNft(json.dumps(RULESET), TEXT)
    ours, foreign = read_tables(NS, nft)
    assert [r.address for r in ours] == [TABLE]
    assert dict(ours[0].attrs) == {
        "digest": "sha256:0123456789abcdef",
        "rules": "forward=2 input=1",
    }
    assert foreign == {f"{NS}/ip/theirs"}


def test_a_table_without_our_comment_is_foreign() -> None:
    ours, foreign = tables_of(NS, json.dumps(RULESET), {("inet", nftables.TABLE): "mine"})
    assert ours == [] and f"{NS}/inet/{nftables.TABLE}" in foreign


def test_no_tables_no_second_call() -> None:
    nft = FakeNft(json.dumps({"nftables": [{"metainfo": {}}]}), "")
    assert read_tables(NS, nft) == ([], set())
    assert nft.asked == [(NS, True)]


# ---------------------------------------------------------------- executor (fake System)


def test_create_checks_then_loads_the_content(model: ir.IR, tmp_path: Path) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    r = rig(tmp_path)
    r.executor.create(table)
    assert [c for c in r.system.calls if c[0] == "nft"] == [
        ("nft", (NS, ("-c", "-f", "-"), table.content)),
        ("nft", (NS, ("-f", "-"), table.content)),
    ]


def test_a_rejected_ruleset_changes_nothing(model: ir.IR, tmp_path: Path) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    r = rig(tmp_path)
    r.system.fail["nft -c"] = "syntax error"
    with pytest.raises(ApplyFailed):
        apply_steps([Step(Action.CREATE, TABLE, None, table)], r.executor)
    assert [c[1][1] for c in r.system.calls if c[0] == "nft"] == [("-c", "-f", "-")]


def test_update_replaces_and_its_undo_loads_the_table_as_it_was(
    model: ir.IR, tmp_path: Path
) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    live = Resource("nft", table.id, {**table.attrs, "rules": "input=2"}, parent=table.parent)
    r = rig(tmp_path)
    r.system.tables[NS] = "table inet hercules-gateways {\n\tchain input {\n\t}\n}\n"
    log = apply_steps([Step(Action.UPDATE, TABLE, live, table, ("rules",))], r.executor)
    loads = [c[1][2] for c in r.system.calls if c[0] == "nft" and c[1][1] == ("-f", "-")]
    assert loads == [table.content]
    assert not log.replay()
    loads = [c[1][2] for c in r.system.calls if c[0] == "nft" and c[1][1] == ("-f", "-")]
    assert loads[-1] == (
        "table inet hercules-gateways\ndelete table inet hercules-gateways\n" + r.system.tables[NS]
    )


def test_delete_and_restore(model: ir.IR, tmp_path: Path) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    live = Resource("nft", table.id, dict(table.attrs), parent=table.parent)
    r = rig(tmp_path)
    r.system.tables[NS] = "table inet hercules-gateways {\n}\n"
    restore = r.executor.delete(live)
    assert ("nft", (NS, ("delete", "table", "inet", "hercules-gateways"), None)) in r.system.calls
    restore()
    assert r.system.calls[-1] == (
        "nft",
        (NS, ("-f", "-"), "table inet hercules-gateways\ndelete table inet hercules-gateways\n"
         "table inet hercules-gateways {\n}\n"),
    )  # fmt: skip


def test_a_create_without_content_is_refused(model: ir.IR, tmp_path: Path) -> None:
    table = tunnels_of(model, "beta")[TABLE]
    bare = Resource("nft", table.id, dict(table.attrs), parent=table.parent)
    with pytest.raises(Exception, match="no ruleset to load"):
        rig(tmp_path).executor.create(bare)


# ---------------------------------------------------------------- conflicts


def test_a_foreign_table_or_interface_is_a_conflict(model: ir.IR) -> None:
    plan = diff(state_of(list(tunnels_of(model, "beta").values())), {})
    problems = conflicts(
        plan, frozenset({f"{NS}/inet/hercules-gateways", f"{NS}/gw-gw-eu"}), "/nonexistent"
    )
    assert (
        f"nftables table inet hercules-gateways exists in namespace {NS} and is not Hercules' "
        "(no hercules comment)"
    ) in problems
    assert any(p.startswith(f"interface gw-gw-eu exists in namespace {NS}") for p in problems)
