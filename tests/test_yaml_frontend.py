"""The YAML front end: same AST as .herc, and every error at its YAML position."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hercc import ast, build_ast, codes
from hercc.diagnostics import Collector, SpecError
from hercc.parser import parse_text
from hercc.syntax import Value
from hercc.yaml_frontend import ALIAS_NODES, parse_yaml
from tests.cliproc import hercc

ROOT = Path(__file__).resolve().parents[1]
POSITION_FIELDS = {"span", "spans", "fastpath_span"}


def without_positions(obj: Any) -> Any:
    """Dataclasses as dicts, minus every source position."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: without_positions(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name not in POSITION_FIELDS
        }
    if isinstance(obj, list | tuple):
        return [without_positions(x) for x in obj]
    if isinstance(obj, dict):
        return {k: without_positions(v) for k, v in obj.items()}
    return obj


def build_yaml(text: str) -> tuple[ast.Spec, Collector]:
    diags = Collector()
    spec = build_ast.build(parse_yaml(text, "t.herc.yaml").stmts, diags)
    return spec, diags


def errors(text: str) -> list[tuple[str, int, int]]:
    with pytest.raises(SpecError) as exc:
        parse_yaml(text, "t.herc.yaml")
    return [(d.code, d.span.line, d.span.col) for d in exc.value.diagnostics]


def test_reference_yaml_builds_the_same_ast_as_reference_herc() -> None:
    herc_path, yaml_path = ROOT / "examples/reference.herc", ROOT / "examples/reference.herc.yaml"
    herc_diags, yaml_diags = Collector(), Collector()
    from_herc = build_ast.build(parse_text(herc_path.read_text(), str(herc_path)).stmts, herc_diags)
    sf = parse_yaml(yaml_path.read_text(), str(yaml_path))
    from_yaml = build_ast.build(sf.stmts, yaml_diags)
    assert herc_diags.items == [] and yaml_diags.items == []
    assert all(s.origin == "yaml" for s in sf.stmts)
    assert len(from_yaml.nodes) == 4 and len(from_yaml.enterprises[0].ipsecs) == 1
    assert without_positions(from_yaml) == without_positions(from_herc)


def test_unknown_key_points_at_the_key() -> None:
    text = "node:\n  alpha:\n    network: prod\n    endpont: 192.0.2.1\n"
    with pytest.raises(SpecError) as exc:
        parse_yaml(text, "t.herc.yaml")
    (d,) = exc.value.diagnostics
    assert (d.code, d.span.line, d.span.col) == (codes.YAML_SCHEMA, 4, 5)
    assert '"endpont"' in d.message and d.hint == 'did you mean "endpoint"?'


def test_wrong_type_points_at_the_value() -> None:
    assert errors("network:\n  prod: {range: 10.0.0.0/16}\nnode:\n  - alpha\n") == [
        (codes.YAML_SCHEMA, 4, 3)
    ]


def test_every_schema_error_is_reported() -> None:
    text = (
        "node:\n"
        "  a: {network: p, nat: maybe}\n"  # nat takes true/false
        "link:\n"
        "  - {between: [a], cost: 1}\n"  # two nodes
        "  - {cost: 2}\n"  # no between
        "nodes: {}\n"  # unknown
    )
    assert errors(text) == [
        (codes.YAML_SCHEMA, 2, 24),
        (codes.YAML_SCHEMA, 4, 15),
        (codes.YAML_SCHEMA, 5, 5),
        (codes.YAML_SCHEMA, 6, 1),
    ]


def test_key_ruled_out_by_protocol() -> None:
    text = (
        "service:\n  s:\n    workload: w\n    port: 1\n"
        "    expose:\n      - {protocol: tcp, port: 9, host: a.example, via: g}\n"
    )
    assert errors(text) == [(codes.YAML_SCHEMA, 6, 34)]


def test_yaml_syntax_error() -> None:
    assert errors("node:\n  alpha:\n    network: prod\n   endpoint: x\n") == [(codes.SYNTAX, 4, 4)]
    assert errors("node:\n\talpha: {}\n") == [(codes.SYNTAX, 2, 1)]


def test_bad_value_is_reported_by_build_ast_at_the_yaml_scalar() -> None:
    _, diags = build_yaml("network:\n  prod:\n    range: 10.20.0.0/33\n")
    assert [(d.code, d.span.line, d.span.col) for d in diags.items] == [(codes.BAD_CIDR, 3, 12)]


def test_missing_option_is_reported_at_the_name() -> None:
    _, diags = build_yaml("node:\n  alpha: {endpoint: 192.0.2.1}\n")
    assert [(d.code, d.span.line, d.span.col) for d in diags.items] == [(codes.MISSING, 2, 3)]


def test_duplicate_key() -> None:
    text = "node:\n  alpha: {network: p, nat: true}\n  alpha: {network: p, nat: true}\n"
    assert errors(text) == [(codes.YAML_SCHEMA, 3, 3)]


def test_yaml_booleans_read_as_on_off_and_flags() -> None:
    spec, diags = build_yaml(
        "network:\n  p: {range: 10.0.0.0/16, psk: on}\n  q: {range: 10.1.0.0/16, psk: off}\n"
        "node:\n  a: {network: p, endpoint: 192.0.2.1, relay: off}\n"
        "  b: {network: [p, q], nat: true, relay: yes}\n"
        "  c: {network: p, endpoint: 192.0.2.3, nat: false}\n"
        "dataplane: {fastpath: off}\n"
    )
    assert diags.items == []
    assert [n.psk for n in spec.networks] == [True, False]
    assert [(n.relay, n.nat) for n in spec.nodes] == [(False, False), (True, True), (True, False)]
    assert spec.nodes[1].networks == ("p", "q")
    assert spec.fastpath == "off"


def test_boolean_where_a_name_goes_is_a_schema_error_with_a_hint() -> None:
    with pytest.raises(SpecError) as exc:
        parse_yaml("workload:\n  w: {node: yes}\n", "t.herc.yaml")
    (d,) = exc.value.diagnostics
    assert (d.code, d.span.line, d.span.col) == (codes.YAML_SCHEMA, 2, 13)
    assert d.hint is not None and '"yes"' in d.hint


def test_statement_shapes() -> None:
    sf = parse_yaml(
        "include: [a.herc, b.herc.yaml]\n"
        "service:\n  s:\n    expose:\n      - {protocol: tcp, port: 15432, via: gw}\n"
        "    health: {protocol: tcp, every: 5s}\n",
        "t.herc.yaml",
    )
    inc_a, inc_b, service = sf.stmts
    assert (inc_a.keyword, inc_a.args[0].kind, inc_a.args[0].text) == (
        "include",
        "string",
        "a.herc",
    )
    assert (inc_b.args[0].span.line, inc_b.args[0].span.col) == (1, 19)
    assert service.block is not None
    expose, health = service.block
    assert [(v.kind, v.text) for v in expose.args] == [
        ("scalar", "tcp"), ("scalar", "15432"), ("atom", "via"), ("scalar", "gw"),
    ]  # fmt: skip
    assert [(v.kind, v.text) for v in health.args] == [
        ("scalar", "tcp"), ("atom", "every"), ("scalar", "5s"),
    ]  # fmt: skip


def test_auth_becomes_a_secret_call() -> None:
    sf = parse_yaml("enterprise:\n  hq:\n    ipsec:\n      b: {auth: {psk: k}}\n", "t.herc.yaml")
    (ent,) = sf.stmts
    assert ent.block is not None and ent.block[0].block is not None
    (auth,) = ent.block[0].block
    method, call = auth.args
    assert (method.kind, method.text) == ("scalar", "psk")
    assert call == Value("call", "secret", call.span, (Value("string", "k", call.span),))


def test_empty_document_is_an_empty_spec() -> None:
    assert parse_yaml("# nothing yet\n", "t.herc.yaml").stmts == ()


def test_schema_is_valid_and_documents_every_property() -> None:
    schema = json.loads((ROOT / "schemas/spec.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    undocumented: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    undocumented.append(f"{where}/{name}")
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for sub in node:
                walk(sub, where)

    walk(schema, "")
    assert undocumented == []


# ---------------------------------------------------------------- aliases

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)  # 9 lines that expand to 9**9 (387 million) strings


def test_an_alias_bomb_is_refused_at_once_at_the_alias(tmp_path: Path) -> None:
    assert len(BOMB.splitlines()) == 9
    (tmp_path / "bomb.herc.yaml").write_text(BOMB)
    proc = hercc("check", "--format", "json", "bomb.herc.yaml", cwd=tmp_path, timeout=10)
    assert proc.returncode == 1, proc.stderr
    [error] = json.loads(proc.stdout)["errors"]
    assert (error["code"], error["line"], error["col"]) == ("E130", 6, 8)  # f: [*e, ...
    assert error["message"] == f"YAML aliases repeat more than {ALIAS_NODES} nodes"


def test_an_alias_shares_a_node_body() -> None:
    spec, diags = build_yaml(
        "network:\n  prod: {range: 10.20.0.0/16}\n"
        "node:\n  a: {network: prod, endpoint: 192.0.2.1}\n"
        "  m: &nat {network: prod, nat: true}\n  n: *nat\n"
    )
    assert diags.items == []
    assert [(n.name, n.nat) for n in spec.nodes] == [("a", False), ("m", True), ("n", True)]


def test_a_recursive_alias_is_reported_at_the_alias() -> None:
    assert errors("network: &n\n  prod:\n    range: 10.0.0.0/8\n    x: *n\n") == [
        (codes.YAML_SCHEMA, 4, 8)
    ]


def test_a_large_spec_may_repeat_more_than_the_minimum() -> None:
    body = "{network: prod, nat: true, relay: off, subnet: [10.0.0.0/24]}"  # 9 nodes
    count = ALIAS_NODES // 9 + 100
    text = "network:\n  prod: {range: 10.0.0.0/8}\nnode:\n  n0: &n " + body + "\n"
    text += "".join(f"  n{i}: *n\n" for i in range(1, count))
    assert len(parse_yaml(text, "t.herc.yaml").stmts) == count + 1
