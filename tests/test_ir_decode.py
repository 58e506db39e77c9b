"""ir.from_data reads back what ir.to_data writes; build_dir.read_build reads a build directory."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hercc import ir
from hercc.backends import render_files
from hercc.build_dir import read_build
from hercc.diagnostics import OperationError
from hercc.pipeline import compile_spec
from hercc.summary import render_summary
from hercc.writer import write_tree
from tests.conftest import EXAMPLES


def _without_peers(model: ir.IR) -> ir.IR:
    """What ir.json holds of an IR: peers go to each node's node.json."""
    nodes = tuple(
        dataclasses.replace(n, networks=tuple(dataclasses.replace(m, peers=()) for m in n.networks))
        for n in model.nodes
    )
    return dataclasses.replace(model, nodes=nodes)


@pytest.mark.parametrize("example", ["reference.herc", "mesh8.herc", "two-networks.herc"])
def test_from_data_reads_back_ir_json(example: str) -> None:
    model = compile_spec(str(EXAMPLES / example), use_lock=False).ir
    assert any(m.peers for n in model.nodes for m in n.networks)
    assert ir.from_data(ir.to_data(model)) == _without_peers(model)
    assert ir.from_data(json.loads(ir.to_json(model))) == _without_peers(model)


def _small(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an IR type with short strings and lists (st.from_type's are too large)."""
    if get_origin(tp) in (Union, types.UnionType):
        return st.one_of(*(_small(arg) for arg in get_args(tp)))
    if get_origin(tp) is tuple:
        return st.lists(_small(get_args(tp)[0]), max_size=2).map(tuple)
    if dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        return st.builds(tp, **{f.name: _small(hints[f.name]) for f in dataclasses.fields(tp)})
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=4),
        int: st.integers(),
        bool: st.booleans(),
        type(None): st.none(),
    }
    return simple[tp]


@settings(max_examples=60, deadline=None)
@given(_small(ir.IR).map(lambda m: dataclasses.replace(m, ir_version=ir.IR_VERSION)))
def test_from_data_inverts_to_data(model: ir.IR) -> None:
    assert ir.from_data(json.loads(ir.to_json(model))) == _without_peers(model)


def test_from_data_names_what_is_wrong() -> None:
    data = ir.to_data(compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir)
    with pytest.raises(OperationError, match="not an IR of version 1"):
        ir.from_data(dict(data, ir_version=0))
    with pytest.raises(OperationError, match="missing 'dns'"):
        ir.from_data({k: v for k, v in data.items() if k != "dns"})
    data["nodes"][1]["relay"] = "yes"
    with pytest.raises(OperationError, match=r"nodes\[1\]\.relay: expected bool, got 'yes'"):
        ir.from_data(data)


def _build(tmp_path: Path, backends: list[str] | None = None) -> tuple[ir.IR, Path]:
    model = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir
    out = tmp_path / "out"
    write_tree(str(out), render_files(model, backends))
    return model, out


def test_read_build_gives_the_topology_the_files_and_the_peers(tmp_path: Path) -> None:
    model, out = _build(tmp_path)
    build = read_build(str(out))
    assert build.topology == _without_peers(model)
    assert "ir.json" in build.files and "manifest.json" not in build.files
    assert build.with_peers() == model
    assert render_summary(build).endswith(
        f"Files: {len(build.files) + 1} (manifest.json lists {len(build.files)} with sha256)\n"
    )


def test_read_build_refuses_what_is_not_a_build(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match=r"not a hercc build directory \(.*ir\.json"):
        read_build(str(tmp_path))
    _, out = _build(tmp_path)
    (out / "manifest.json").write_text("[]")
    with pytest.raises(OperationError, match="not a hercc build directory"):
        read_build(str(out))
    (out / "manifest.json").unlink()
    with pytest.raises(OperationError, match=r"not a hercc build directory \(.*manifest\.json"):
        read_build(str(out))


def test_peers_need_the_node_json_backend(tmp_path: Path) -> None:
    _, out = _build(tmp_path, ["networkd"])
    build = read_build(str(out))  # the topology alone is there: summary works
    assert build.topology.nodes
    with pytest.raises(OperationError, match="build with the node_json backend"):
        build.with_peers()
