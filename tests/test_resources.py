"""hercc.resources: the vocabulary plan/, state/, lab/ and the backends share.

Names (one IFNAMSIZ), typed ids, actions, and the rule that the package
stands below everything that uses it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hercc.resources.action import Action
from hercc.resources.errors import MalformedId
from hercc.resources.ids import (
    AddressId,
    InterfaceId,
    NetnsId,
    PeerId,
    RouteId,
    SysctlId,
    format_id,
    parse_id,
    veth_pair_end,
)
from hercc.resources.model import Resource
from hercc.resources.naming import IFNAME_MAX, IFNAMSIZ, Naming, ifname, wg_ifname

HERCC = Path(__file__).resolve().parent.parent / "compiler" / "hercc"


def test_one_ifnamsiz_and_its_names() -> None:
    assert (IFNAMSIZ, IFNAME_MAX) == (16, 15)  # Linux counts the terminating NUL
    assert wg_ifname("prod") == "wg-prod"
    assert wg_ifname("laboratory-east") == "wg-laboratory-e"
    assert wg_ifname("x" * 12) == "wg-" + "x" * 12
    assert len(wg_ifname("a-very-long-network-name")) == IFNAME_MAX
    assert ifname("hv-", "x" * 12) == "hv-" + "x" * 12
    hashed = ifname("hv-", "x" * 13, "hv.")
    assert hashed.startswith("hv.xxxx") and len(hashed) == IFNAME_MAX
    assert Naming().veth_host("x" * 13) == hashed
    assert Naming().wg_ifname("prod") == "wg-prod"


def test_ids_parse_by_shape_and_format_back() -> None:
    key = "ab/cd+ef=" + "x" * 35  # base64 keys may hold "/"
    ns, ifname_, pubkey = parse_id(PeerId, f"herc-prod/wg-prod/{key}")
    assert (ns, ifname_, pubkey) == ("herc-prod", "wg-prod", key)
    assert parse_id(AddressId, "n/wg/10.0.0.1/24").cidr == "10.0.0.1/24"
    assert parse_id(RouteId, "n/0.0.0.0/0").dst == "0.0.0.0/0"
    assert parse_id(SysctlId, "n/net.ipv4.ip_forward").key == "net.ipv4.ip_forward"
    assert parse_id(NetnsId, "herc-prod").ns == "herc-prod"
    assert format_id(parse_id(AddressId, "n/wg/10.0.0.1/24")) == "n/wg/10.0.0.1/24"
    assert format_id(RouteId("n", "::/0")) == "n/::/0"
    assert format_id(NetnsId("herc-prod")) == "herc-prod"
    for bad in ("n", "n/", "/wg", ""):
        with pytest.raises(MalformedId):
            parse_id(InterfaceId, bad)
    with pytest.raises(MalformedId):
        parse_id(AddressId, "n/only-two")


def test_resource_id_as_knows_its_kind() -> None:
    veth = Resource("veth", "herc-prod/hv-web")
    assert veth.id_as(InterfaceId) == ("herc-prod", "hv-web")
    with pytest.raises(MalformedId, match="veth"):
        veth.id_as(PeerId)


def test_veth_pair_end_is_the_end_that_is_not_the_workloads() -> None:
    assert veth_pair_end("w/eth0", "n/hv-web") == "n/hv-web"
    assert veth_pair_end("n/hv-web", "w/eth0") == "n/hv-web"
    assert veth_pair_end("b/x", "a/y") == "a/y"


def test_action_values_and_symbols() -> None:
    assert [a.value for a in Action] == ["create", "update", "delete", "replace"]
    assert [a.symbol for a in Action] == ["+", "~", "-", "-/+"]


def _hercc_imports(package: str) -> set[str]:
    """Every hercc module imported anywhere in hercc/<package> (lazy imports included)."""
    found: set[str] = set()
    for path in (HERCC / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "hercc"}


def test_resources_import_only_the_ir_and_diagnostics() -> None:
    allowed = {"hercc.ir", "hercc.diagnostics"}
    outside = {m for m in _hercc_imports("resources") if not m.startswith("hercc.resources")}
    assert outside <= allowed


def test_state_does_not_import_plan() -> None:
    assert not {m for m in _hercc_imports("state") if m.startswith("hercc.plan")}
