"""hercc graph: DOT content and a real Graphviz render."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hercc.cli import main as cli
from tests.conftest import EXAMPLES

REF = str(EXAMPLES / "reference.herc")


def test_dot_shows_relays_nat_paths_and_gateways(tmp_path: Path) -> None:
    out = tmp_path / "net.dot"
    assert cli.main(["graph", REF, "-o", str(out)]) == 0
    dot = out.read_text()
    assert '"node:alpha" [label="alpha", shape=box, style=bold' in dot
    assert '"node:gamma" [label="gamma", shape=ellipse, style=dashed' in dot
    # Peerings are exactly the hops of the chosen paths.
    edges = {line.split(" [")[0].strip() for line in dot.splitlines() if " -- " in line}
    assert {
        '"node:alpha" -- "node:beta"',
        '"node:alpha" -- "node:delta"',
        '"node:beta" -- "node:gamma"',
    } <= edges
    assert '"node:alpha" -- "node:gamma"' not in edges  # cost 20 direct loses to 15 via beta
    assert '"gateway:gw-eu" -- "node:delta" [style=dotted, label="tcp 15432 -> reports"]' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot is not installed")
def test_svg_render(tmp_path: Path) -> None:
    out = tmp_path / "net.svg"
    assert cli.main(["graph", REF, "-o", str(out)]) == 0
    svg = out.read_text()
    assert (
        svg.lstrip().startswith("<?xml")
        and "<svg" in svg
        and "delta" in svg
        and "shop.example.com" in svg
    )


def test_format_flag_picks_the_drawing(tmp_path: Path) -> None:
    out = tmp_path / "net.out"
    assert cli.main(["graph", REF, "-o", str(out), "--format", "dot"]) == 0
    assert out.read_text().startswith("graph hercules {")
