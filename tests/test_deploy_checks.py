"""Specs that used to pass `hercc check` and then fail (or misroute) once deployed.

Each is now an error at check time, at the place to fix, in both forms;
the cases that deploy fine stay accepted.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from hercc import codes
from hercc.diagnostics import SpecError
from tests.cliproc import hercc
from tests.conftest import compile_text, errors_of, marked

NET = "network prod {\n  range 10.20.0.0/16\n}\n"
TWO = (
    NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
    "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
)
KEY_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
KEY_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("spec.herc", TWO + "gateway g { address 1.2.3.4; listen @@7443 }\n"),
        (
            "spec.herc.yaml",
            "network: {prod: {range: 10.20.0.0/16}}\n"
            "node:\n  a: {network: prod, endpoint: 192.0.2.1}\n"
            "gateway:\n  g: {address: 1.2.3.4, listen: @@7443}\n",
        ),
    ],
    ids=["herc", "yaml"],
)
def test_a_listen_port_on_the_default_tunnel_port_is_a_located_error(
    tmp_path: Path, name: str, text: str
) -> None:
    source, line, col = marked(text)
    (tmp_path / name).write_text(source)
    proc = hercc("check", "--format", "json", name, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # was 70: KeyError 'tunnel'
    [error] = json.loads(proc.stdout)["errors"]
    assert (error["code"], error["line"], error["col"]) == ("E230", line, col)
    assert error["message"] == (
        "gateway g: listen port 7443 is also the tunnel port (the default `tunnel`)"
    )
    assert error["hint"] == "give the gateway another `tunnel` port"


def test_relay_on_a_nat_node_is_an_error_through_the_cli(tmp_path: Path) -> None:
    source, line, col = marked(TWO + "node n {\n  network prod\n  nat\n  relay @@on\n}\n")
    (tmp_path / "spec.herc").write_text(source)
    proc = hercc("check", "spec.herc", cwd=tmp_path)
    assert proc.returncode == 1  # was 0: relay silently dropped
    assert proc.stderr.startswith(
        f"spec.herc:{line}:{col}: error[E228]: node n is nat and has relay on\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        # one address, another port: two sockets
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network prod\n  endpoint 192.0.2.1:51821\n}\n",
        # `relay off` on a nat node says what nat implies
        TWO + "node n {\n  network prod\n  nat\n  relay off\n}\n",
        # an endpoint outside every range, next to it
        "network prod {\n  range 10.20.0.0/16\n}\n"
        "node a {\n  network prod\n  endpoint 10.21.0.1\n}\n"
        "node b {\n  network prod\n  endpoint 10.19.255.255\n}\n",
        # long network names that share 12 characters, on different nodes
        "network tenant-alpha-1 {\n  range 10.20.0.0/16\n}\n"
        "network tenant-alpha-2 {\n  range 10.21.0.0/16\n}\n"
        "node a {\n  network tenant-alpha-1\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network tenant-alpha-1\n  endpoint 192.0.2.2\n}\n"
        "node c {\n  network tenant-alpha-2\n  endpoint 192.0.2.3\n}\n"
        "node d {\n  network tenant-alpha-2\n  endpoint 192.0.2.4\n}\n",
        # network w-web, and workload web on a node outside it
        "network prod {\n  range 10.20.0.0/16\n}\nnetwork w-web {\n  range 10.30.0.0/16\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
        "node c {\n  network w-web\n  endpoint 192.0.2.3\n}\n"
        "node d {\n  network w-web\n  endpoint 192.0.2.4\n}\n"
        "workload web {\n  node a\n}\n",
        # two distinct pinned keys
        NET + f'node a {{\n  network prod\n  endpoint 192.0.2.1\n  pubkey "{KEY_A}"\n}}\n'
        f'node b {{\n  network prod\n  endpoint 192.0.2.2\n  pubkey "{KEY_B}"\n}}\n',
    ],
    ids=[
        "same address other port",
        "relay off",
        "beside the range",
        "ifnames on other nodes",
        "namespace on another node",
        "two keys",
    ],
)
def test_what_deploys_fine_stays_accepted(tmp_path: Path, text: str) -> None:
    compile_text(tmp_path, text)


def test_a_second_network_on_the_same_port_is_one_endpoint_too(tmp_path: Path) -> None:
    text = (
        "network prod {\n  range 10.20.0.0/16\n}\n"
        "network dev {\n  range 10.30.0.0/16\n  port 51821\n}\n"
        "node a {\n  network prod, dev\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network dev\n  endpoint @@192.0.2.1:51821\n}\n"
    )
    source, line, col = marked(text)
    [diag] = errors_of(tmp_path, source)
    assert (diag.code, diag.span.line, diag.span.col) == (codes.ENDPOINT_REUSED, line, col)
    assert diag.message == "nodes a and b are both dialled at 192.0.2.1:51821"


def test_an_endpoint_inside_range6_is_reported_too(tmp_path: Path) -> None:
    text = (
        "network prod {\n  range6 fd42::/48\n}\n"
        "node a {\n  network prod\n  endpoint [fd42::9]:51820\n}\n"
        "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
    )
    [diag] = errors_of(tmp_path, text)
    assert diag.code == codes.ENDPOINT_IN_OVERLAY
    assert diag.message == "node a: endpoint fd42::9 is inside range6 fd42::/48 of network prod"


def test_a_range_smaller_than_a_30_says_so(tmp_path: Path) -> None:
    [diag] = errors_of(tmp_path, "network prod {\n  range 10.20.0.0/32\n}\n")
    assert diag.code == codes.SUBNET_SIZE
    assert (diag.span.line, diag.span.col) == (2, 9)
    assert diag.message == "network prod: range 10.20.0.0/32 is smaller than one /30 subnet"
    assert "/30 or wider" in (diag.hint or "")


def test_a_full_range6_asks_for_a_wider_range6_not_smaller_subnets(tmp_path: Path) -> None:
    text = (
        "network prod {\n  range6 fd42::/64\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
    )
    [diag] = errors_of(tmp_path, text)
    assert diag.code == codes.SUBNET_EXHAUSTED
    assert diag.hint == "widen the network's range6: every node takes one /64"


@pytest.mark.parametrize(
    "options",
    [
        "listen @@7443",  # tunnel left at its default
        "tunnel @@80",  # listen left at its default (80, 443)
        "listen 80, 8443\n  tunnel @@8443",
    ],
)
def test_a_tunnel_port_clash_is_located_whichever_side_is_a_default(
    tmp_path: Path, options: str
) -> None:
    source, line, col = marked(TWO + f"gateway g {{\n  address 203.0.113.1\n  {options}\n}}\n")
    found = [(d.code, d.span.line, d.span.col) for d in errors_of(tmp_path, source)]
    assert found == [(codes.EXPOSED_TWICE, line, col)]


REFERENCE = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["reference.herc", "reference.herc.yaml"])
def test_dropping_any_one_option_of_the_reference_never_crashes(tmp_path: Path, name: str) -> None:
    """Required options, and options left at their default: every check copes."""
    lines = (REFERENCE / name).read_text().splitlines(keepends=True)
    options = [
        i for i, line in enumerate(lines) if line[:1].isspace() and line.strip()[:1].isalpha()
    ]
    assert len(options) > 40
    for i in options:
        text = "".join(lines[:i] + lines[i + 1 :])
        with contextlib.suppress(SpecError):
            compile_text(tmp_path, text, name)
