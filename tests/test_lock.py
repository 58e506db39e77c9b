"""Stable addressing: SPEC.lock keeps every allocation where it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.ir import IR
from hercc.pipeline import compile_spec
from tests.conftest import EXAMPLES

NEW_NODE = """
node aardvark {
  network  prod
  endpoint 192.0.2.77
}

workload aaa {
  node aardvark
}

workload beta-side {
  node beta
}
"""


def allocations(model: IR) -> dict[str, tuple[str | None, ...]]:
    out: dict[str, tuple[str | None, ...]] = {}
    for node in model.nodes:
        for m in node.networks:
            out[f"node {node.name}/{m.network}"] = (m.subnet, m.subnet6, m.address, m.address6)
    for w in model.workloads:
        out[f"workload {w.name}"] = (w.address, w.address6)
    for g in model.gateways:
        out[f"gateway {g.name}"] = (g.tunnel_range, g.tunnel_range6, g.tunnel_address)
        for t in g.tunnels:
            for f in t.forwards:
                out[f"tunnel {g.name}/{f.workload}"] = (f.tunnel_address,)
    return out


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", path)
    return path


def build(spec: Path, *extra: str) -> int:
    return cli.main(["build", str(spec), "-o", str(spec.parent / "out"), *extra])


def current(spec: Path) -> dict[str, tuple[str | None, ...]]:
    return allocations(compile_spec(str(spec)).ir)


def test_adding_a_node_changes_no_earlier_allocation(spec: Path) -> None:
    assert build(spec) == 0
    before = current(spec)
    spec.write_text(spec.read_text() + NEW_NODE)
    assert build(spec) == 0
    after = current(spec)
    for key, value in before.items():
        assert after[key] == value, key
    # The newcomer sorts first by name, yet it takes a free subnet, not alpha's.
    assert after["node aardvark/prod"][0] not in {
        v[0] for k, v in before.items() if k.startswith("node")
    }
    assert json.loads(Path(str(spec) + ".lock").read_text())["networks"]["prod"]["nodes"][
        "aardvark"
    ]


def test_removing_and_reordering_change_nobody_else(spec: Path) -> None:
    spec.write_text(spec.read_text() + NEW_NODE)
    assert build(spec) == 0
    before = current(spec)
    # Remove gamma's workload (its service moves to aaa) and put the new blocks first.
    text = spec.read_text().replace(NEW_NODE, "")
    text = text.replace("workload web { node gamma }\n", "")
    text = text.replace("  workload web\n", "  workload aaa\n")
    spec.write_text(NEW_NODE + text)
    assert build(spec) == 0
    after = current(spec)
    assert "workload web" not in after
    for key, value in after.items():
        if key.startswith("tunnel ") and key not in before:
            continue  # the service moved to aaa: aaa is new behind the gateways
        assert before[key] == value, key


def test_pinned_address_wins_over_the_lock(spec: Path) -> None:
    assert build(spec) == 0
    web = current(spec)["workload web"][0]
    assert web is not None
    # Pin api (on delta) elsewhere and pin a new workload on gamma to web's address:
    # the pin wins, web moves, and nobody else does.
    spec.write_text(spec.read_text() + f"\nworkload pinned {{\n  node gamma\n  address {web}\n}}\n")
    assert build(spec) == 0
    after = current(spec)
    assert after["workload pinned"][0] == web
    assert after["workload web"][0] != web


def test_frozen_fails_instead_of_changing_the_lock(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(spec) == 0
    lock = Path(str(spec) + ".lock").read_bytes()
    assert build(spec, "--frozen") == 0  # up to date: fine
    spec.write_text(spec.read_text() + NEW_NODE)
    assert build(spec, "--frozen") == 1
    assert "--frozen" in capsys.readouterr().err
    assert Path(str(spec) + ".lock").read_bytes() == lock
    assert cli.main(["check", str(spec), "--frozen"]) == 1


def test_lock_is_sorted_json(spec: Path) -> None:
    assert build(spec) == 0
    text = Path(str(spec) + ".lock").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_committed_example_locks_are_current() -> None:
    for name in ("reference.herc", "quickstart.herc"):
        compile_spec(str(EXAMPLES / name), frozen=True)


NEW_GATEWAY = """
gateway aa-gw {
  address 198.51.100.9
}

service aa-svc {
  workload aaa
  port     9000
  expose   tcp 19000 via aa-gw, gw-eu
}
"""


def test_a_new_gateway_and_exposure_move_no_tunnel_address(spec: Path) -> None:
    assert build(spec) == 0
    before = current(spec)
    spec.write_text(spec.read_text() + NEW_NODE + NEW_GATEWAY)
    assert build(spec) == 0
    after = current(spec)
    for key, value in before.items():
        assert after[key] == value, key
    # aa-gw sorts first, yet takes a free range; aaa takes a free address on gw-eu.
    assert after["gateway aa-gw"][0] not in {v[0] for k, v in before.items() if "gateway" in k}
    assert after["tunnel gw-eu/aaa"] not in set(before.values())
    lock = json.loads(Path(str(spec) + ".lock").read_text())
    assert lock["gateways"]["gw-eu"]["workloads"]["aaa"] == {
        "address": after["tunnel gw-eu/aaa"][0]
    }


def test_zone_serial_moves_only_with_the_zone(spec: Path) -> None:
    def serial() -> int:
        return compile_spec(str(spec)).ir.dns[0].serial

    assert build(spec) == 0 and build(spec) == 0
    assert serial() == 1
    spec.write_text(spec.read_text().replace("ttl        60", "ttl        120"))
    assert build(spec) == 0 and build(spec) == 0
    assert serial() == 2
    lock = json.loads(Path(str(spec) + ".lock").read_text())
    assert lock["dns"]["example.com"]["serial"] == "2"
