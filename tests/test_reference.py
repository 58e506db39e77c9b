"""reference.herc compiles, with the meaning its comments give."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hercc import ir
from hercc.fmt import format_source
from hercc.parser import parse_text
from hercc.pipeline import compile_spec
from hercc.schemas_check import validate_ir
from tests.conftest import EXAMPLES, SHARED_REFERENCE


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir


def test_example_copy_is_the_shared_reference_in_fmt_layout() -> None:
    """The same statements and comments as ../shared's, laid out as `hercc fmt` does."""
    if not SHARED_REFERENCE.exists():
        pytest.skip("../shared is not beside this clone")
    shared = SHARED_REFERENCE.read_text(encoding="utf-8")
    ours = (EXAMPLES / "reference.herc").read_text(encoding="utf-8")
    assert format_source(parse_text(shared, str(SHARED_REFERENCE))) == ours


def test_shared_reference_compiles_to_the_same_ir(tmp_path: Path) -> None:
    if not SHARED_REFERENCE.exists():
        pytest.skip("../shared is not beside this clone")
    copy = tmp_path / "reference.herc"
    shutil.copy(SHARED_REFERENCE, copy)  # ../shared is read-only in CI; never write a lock there
    ours = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir
    assert ir.to_json(compile_spec(str(copy), use_lock=False).ir) == ir.to_json(ours)


def test_ir_validates_against_its_schema(model: ir.IR) -> None:
    validate_ir(ir.to_data(model))
    assert ir.to_data(model)["ir_version"] == 1


def test_network_prod(model: ir.IR) -> None:
    [prod] = model.networks
    assert (prod.name, prod.range, prod.range6) == ("prod", "10.20.0.0/16", "fd42:20::/48")
    assert (prod.subnet_prefix, prod.subnet6_prefix, prod.port, prod.mtu) == (24, 64, 51820, 1420)
    assert prod.keepalive_ms == 25_000


def test_public_and_nat_nodes(model: ir.IR) -> None:
    kinds = {n.name: n.kind for n in model.nodes}
    assert kinds == {"alpha": "public", "beta": "public", "gamma": "nat", "delta": "nat"}
    alpha = model.node("alpha").networks[0]
    assert alpha.endpoint == "192.0.2.10:51820" and alpha.listen_port == 51820
    assert model.node("gamma").networks[0].endpoint is None


def test_each_node_has_a_subnet_and_a_64(model: ir.IR) -> None:
    for node in model.nodes:
        [m] = node.networks
        assert m.subnet is not None and m.subnet.endswith("/24") and m.subnet.startswith("10.20.")
        assert (
            m.subnet6 is not None and m.subnet6.endswith("/64") and m.subnet6.startswith("fd42:20:")
        )
        assert m.address is not None and m.address.endswith(".1")


def test_delta_keeps_its_pinned_subnet(model: ir.IR) -> None:
    delta = model.node("delta").networks[0]
    assert (delta.subnet, delta.address) == ("10.20.9.0/24", "10.20.9.1")
    others = {n.networks[0].subnet for n in model.nodes if n.name != "delta"}
    assert "10.20.9.0/24" not in others


def test_workloads_take_addresses_from_their_node(model: ir.IR) -> None:
    web = next(w for w in model.workloads if w.name == "web")
    api = next(w for w in model.workloads if w.name == "api")
    assert api.address == "10.20.9.20" and api.node == "delta"
    gamma = model.node("gamma").networks[0]
    assert web.node == "gamma" and web.address is not None
    assert web.address.rsplit(".", 1)[0] == gamma.address.rsplit(".", 1)[0]  # type: ignore[union-attr]


def test_links_and_defaults(model: ir.IR) -> None:
    links = {(link.a, link.b): link.cost for link in model.underlay.links}
    assert links == {
        ("alpha", "beta"): 5,
        ("alpha", "gamma"): 20,
        ("beta", "gamma"): 10,
        ("beta", "delta"): None,
    }
    assert model.underlay.public_public_cost == 10 and model.underlay.nat_public_cost == 10


def test_gateways_and_services(model: ir.IR) -> None:
    gws = {g.name: g for g in model.gateways}
    assert gws["gw-eu"].address6 == "2001:db8:50::1" and gws["gw-eu"].farmer == "acme-isp"
    assert gws["gw-us"].listen == (80, 443) and gws["gw-us"].tunnel == 7443
    shop = next(s for s in model.services if s.name == "shop")
    assert [(e.protocol, e.host, e.via) for e in shop.exposes] == [
        ("https", "shop.example.com", ("gw-eu", "gw-us")),
        ("http", "shop.example.com", ("gw-eu", "gw-us")),
    ]
    assert shop.health == ir.Health("http", "/healthz", 5000)
    reports = next(s for s in model.services if s.name == "reports")
    assert [(e.protocol, e.port, e.via) for e in reports.exposes] == [("tcp", 15432, ("gw-eu",))]


def test_dns_round_robin_one_record_per_gateway(model: ir.IR) -> None:
    [zone] = model.dns
    assert (zone.zone, zone.ttl, zone.nameservers) == ("example.com", 60, ("ns1.example.com",))
    assert {(r.name, r.type, r.value) for r in zone.records} == {
        ("shop.example.com", "A", "203.0.113.50"),
        ("shop.example.com", "A", "198.51.100.60"),
        ("shop.example.com", "AAAA", "2001:db8:50::1"),
    }


def test_enterprise_links(model: ir.IR) -> None:
    [hq] = model.enterprise
    assert hq.vxlan == (ir.Vxlan("dc1", "alpha", 100, "192.0.2.10", "192.0.2.200", 4789, "br-hq"),)
    [branch] = hq.ipsec
    assert (branch.node, branch.remote, branch.local_ts, branch.remote_ts) == (
        "beta",
        "192.0.2.254",
        ("10.20.0.0/16",),
        ("172.16.0.0/12",),
    )
    assert branch.psk == ir.SecretRef("hq-branch-psk")
    assert branch.proposals == ("aes256-sha256-modp2048",)
    assert hq.vlan == (ir.Vlan("office", "alpha", "eth1", 42, "172.30.42.1/24"),)
    assert hq.bridge == (ir.Bridge("lan", "alpha", ("eth2", "eth3")),)


def test_dataplane_and_netflow(model: ir.IR) -> None:
    assert model.fastpath == "xdp"
    assert model.netflow == ir.Netflow("192.0.2.99:2055", "ipfix", 60_000, 15_000, 1)


def test_secret_is_named_never_valued(model: ir.IR) -> None:
    text = ir.to_json(model)
    assert '"secret": "hq-branch-psk"' in text
