"""hercc route: paths and costs, text and JSON."""

from __future__ import annotations

import json

import pytest

from hercc.cli import main as cli
from tests.conftest import EXAMPLES

REF = str(EXAMPLES / "reference.herc")


def test_route_from_to(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["route", REF, "--from", "gamma", "--to", "delta"]) == 0
    assert capsys.readouterr().out == "prod: gamma -> beta -> alpha -> delta  (cost 25, 2 relays)\n"


def test_route_matrix_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["route", REF, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == 12  # 4 nodes, every ordered pair
    pairs = {(e["from"], e["to"]): (e["path"], e["cost"]) for e in entries}
    assert pairs[("alpha", "gamma")] == (["alpha", "beta", "gamma"], 15)
    for (a, b), (path, cost) in pairs.items():
        assert pairs[(b, a)] == (list(reversed(path)), cost)  # symmetric


def test_route_unknown_node_is_a_usage_error() -> None:
    assert cli.main(["route", REF, "--from", "nope", "--to", "delta", "--network", "prod"]) == 2
