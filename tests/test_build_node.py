"""`hercc build --node`: one node's files, byte for byte those of a full build, and nothing else."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.pipeline import compile_spec
from tests.clitools import tree
from tests.conftest import EXAMPLES

# No explicit link: routing takes its shared per-class peer lists (nat nodes
# reach each other through the lowest-named relay, behind the whole range).
CLEAN = """network mesh {
  range 10.0.0.0/16
  range6 fd42::/48
  psk on
}
node pa { network mesh; endpoint 192.0.2.1 }
node pb { network mesh; endpoint 192.0.2.2 }
node pc { network mesh; endpoint 192.0.2.3; relay off }
node na { network mesh; nat }
node nb { network mesh; nat }
node nc { network mesh; nat }
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", path)
    return path


@pytest.fixture
def keys(spec: Path, tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    return keys


def build(spec: Path, out: Path, *extra: str) -> int:
    return cli.main(["build", str(spec), "-o", str(out), *extra])


def test_node_files_are_those_of_the_full_build_and_only_them(
    spec: Path, keys: Path, tmp_path: Path
) -> None:
    assert build(spec, tmp_path / "full", "--keys", str(keys)) == 0
    full = tree(tmp_path / "full")
    for chosen in (["gamma"], ["alpha", "delta"]):
        out = tmp_path / "-".join(chosen)
        args = [a for name in chosen for a in ("--node", name)]
        assert build(spec, out, "--keys", str(keys), *args) == 0
        files = tree(out)
        wanted = {
            p for p in full if p == "ir.json" or any(p.startswith(f"nodes/{n}/") for n in chosen)
        }
        assert set(files) == wanted | {"manifest.json"}
        assert any("/wireguard/" in p for p in files) and any("/secrets/" in p for p in files)
        # a node's end of its gateway tunnels is its own; the gateways' files are no node's
        assert not any(p.startswith("gateways/") for p in files)
        for path in wanted:
            assert files[path] == full[path], path
        # the manifest lists exactly what was written (secrets aside), with true hashes
        manifest = json.loads(files["manifest.json"])["files"]
        assert set(manifest) == {p for p in wanted if "/secrets/" not in p}
        for path, entry in manifest.items():
            assert entry["sha256"] == hashlib.sha256(files[path]).hexdigest()


def test_each_node_alone_is_as_in_the_full_build(tmp_path: Path) -> None:
    for name, text in (("reference.herc", None), ("clean.herc", CLEAN)):
        spec = tmp_path / name
        if text is None:
            shutil.copy(EXAMPLES / name, spec)
        else:
            spec.write_text(text)
        keys = str(tmp_path / f"{name}-keys")
        assert cli.main(["keys", "init", str(spec), "--keys", keys]) == 0
        assert build(spec, tmp_path / f"{name}-full", "--keys", keys) == 0
        full = tree(tmp_path / f"{name}-full")
        assert any("/wireguard/" in p for p in full)
        nodes = sorted({p.split("/")[1] for p in full if p.startswith("nodes/")})
        for node in nodes:
            out = tmp_path / f"{name}-{node}"
            assert build(spec, out, "--node", node, "--keys", keys) == 0
            files = tree(out)
            del files["manifest.json"]
            assert files == {p: full[p] for p in files}, node
            assert {p for p in full if p.startswith(f"nodes/{node}/")} <= set(files)


def test_routing_computes_only_the_selected_nodes_peers(spec: Path) -> None:
    model = compile_spec(str(spec), use_lock=False, peers_for={"gamma"}).ir
    with_peers = {n.name for n in model.nodes for m in n.networks if m.peers}
    assert with_peers == {"gamma"}


def test_gateway_tunnel_ends_are_the_nodes_own(spec: Path, keys: Path, tmp_path: Path) -> None:
    """The reference's delta hosts db, exposed through gw-eu only: one tunnel."""
    assert build(spec, tmp_path / "full", "--keys", str(keys)) == 0
    full = tree(tmp_path / "full")
    assert "gateways/gw-eu/haproxy.cfg" in full and "gateways/gw-eu/secrets/gw-eu.key" in full
    assert build(spec, tmp_path / "delta", "--keys", str(keys), "--node", "delta") == 0
    files = tree(tmp_path / "delta")
    own = {
        f"nodes/delta/{f}"
        for f in ("wireguard/gw.gw-eu.conf", "wg-quick/gw.gw-eu.conf", "netplan/gw.gw-eu.yaml",
                  "networkd/50-hercules-gw.gw-eu.netdev", "networkd/50-hercules-gw.gw-eu.network",
                  "nftables/prod.nft")
    }  # fmt: skip
    gateway_files = {p for p in full if "gw-" in p or "/nftables/" in p}
    assert own == {p for p in gateway_files if p.startswith("nodes/delta/")} <= set(files)
    for path in own | {"nodes/delta/node.json"}:
        assert files[path] == full[path], path
    assert json.loads(files["nodes/delta/node.json"])["gateways"].keys() == {"gw-eu"}


def test_a_global_backend_with_node_writes_only_ir_json(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert build(spec, out, "--node", "delta", "--backend", "haproxy") == 0
    assert sorted(json.loads((out / "manifest.json").read_text())["files"]) == ["ir.json"]


def test_node_and_backend_combine(spec: Path, keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert build(spec, out, "--keys", str(keys), "--node", "beta", "--backend", "wireguard") == 0
    listed = json.loads((out / "manifest.json").read_text())["files"]
    assert sorted(listed) == ["ir.json", "nodes/beta/wireguard/prod.conf"]


def test_unknown_node_is_a_usage_error_listing_the_nodes(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert build(spec, out, "--node", "gamma", "--node", "omega") == 2
    err = capsys.readouterr().err
    assert "no node omega in the spec (nodes: alpha, beta, delta, gamma)" in err
    assert not out.exists()


def test_unknown_node_in_a_large_spec_lists_only_some(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = "".join(
        f"node n{i:02d} {{\n  network mesh\n  endpoint 192.0.2.{i + 1}\n}}\n" for i in range(30)
    )
    spec = tmp_path / "big.herc"
    spec.write_text("network mesh {\n  range 10.0.0.0/16\n  subnets /24\n}\n" + nodes)
    assert build(spec, tmp_path / "out", "--node", "nope", "--format", "json") == 2
    error = json.loads(capsys.readouterr().out)
    assert error["kind"] == "usage"
    assert error["error"].endswith(
        "(nodes: n00, n01, n02, n03, n04, n05, n06, n07, n08, n09, "
        "n10, n11, n12, n13, n14, n15, n16, n17, n18, n19, ... (10 more))"
    )
