"""Parsing and rendering keep no state between calls: calls from many threads at once
give exactly what the same calls give one after another (the lab runs them in pools).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hercc import ir
from hercc.backends import render_all
from hercc.diagnostics import Diagnostic, SpecError
from hercc.parser import parse_text
from hercc.pipeline import compile_spec
from hercc.syntax import SourceFile
from tests.conftest import EXAMPLES

T = TypeVar("T")
ROUNDS = 40


def _concurrently(calls: list[Callable[[], T]]) -> list[T]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: call(), calls))


def _parse(text: str, path: str) -> SourceFile | tuple[Diagnostic, ...]:
    """The syntax tree, or the diagnostics (each names its file and position)."""
    try:
        return parse_text(text, path)
    except SpecError as exc:
        return tuple(exc.diagnostics)


def test_parses_in_threads_keep_their_own_file_positions_comments_and_errors() -> None:
    good = (EXAMPLES / "reference.herc").read_text(encoding="utf-8")
    # Twice the reference, so a parse lasts long enough for threads to interleave.
    files = {
        "a/good.herc": good + good,
        "b/bad.herc": '# one comment\nnode x {\n  endpoint "a\\qb"\n  nat\n}\n' * 200,
    }
    serial = {path: _parse(text, path) for path, text in files.items()}
    good_tree, bad_errors = serial["a/good.herc"], serial["b/bad.herc"]
    assert isinstance(good_tree, SourceFile) and good_tree.comments
    assert isinstance(bad_errors, tuple) and len(bad_errors) == 200
    assert {d.span.file for d in bad_errors} == {"b/bad.herc"}
    order = [path for _ in range(ROUNDS) for path in files]
    results = _concurrently([lambda p=path: _parse(files[p], p) for path in order])
    for path, result in zip(order, results, strict=True):
        assert result == serial[path], path


def _model(spec: str) -> ir.IR:
    plain = compile_spec(spec, use_lock=False).ir
    names = [n.name for n in plain.nodes] + [f"gateway:{g.name}" for g in plain.gateways]
    keys = {name: f"{name}-public-key=" for name in names}  # known keys: every file is written
    return compile_spec(spec, use_lock=False, pubkeys=keys).ir


def test_renders_in_threads_give_the_bytes_of_serial_renders() -> None:
    models = [_model(str(EXAMPLES / name)) for name in ("mesh8.herc", "reference.herc")]
    serial = [render_all(model) for model in models]
    assert all(any("/wireguard/" in path for path in files) for files in serial)
    order = [i for _ in range(ROUNDS) for i in range(len(models))]
    results = _concurrently([lambda i=i: render_all(models[i]) for i in order])
    for i, files in zip(order, results, strict=True):
        assert files == serial[i]
