"""Reads a spec and everything it includes into one list of statements.

`include "path"` is resolved relative to the including file; a cycle is an
error naming the whole chain. `.herc.yaml`/`.yaml`/`.yml` files go through the
YAML front end, everything else through the .herc parser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hercc import codes
from hercc.diagnostics import Collector, Diagnostic, SpecError
from hercc.source import Span
from hercc.syntax import SourceFile, Stmt

YAML_SUFFIXES = (".herc.yaml", ".yaml", ".yml")


@dataclass
class LoadedSpec:
    """The statements of a spec in document order, with the files they came from."""

    root: str
    stmts: list[Stmt] = field(default_factory=list)
    files: dict[str, SourceFile] = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, str]:
        return {path: sf.text for path, sf in self.files.items()}


def is_yaml(path: str) -> bool:
    return path.endswith(YAML_SUFFIXES)


def parse_file(text: str, path: str) -> SourceFile:
    if is_yaml(path):
        from hercc.yaml_frontend import parse_yaml

        return parse_yaml(text, path)
    from hercc.parser import parse_text

    return parse_text(text, path)


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def load(path: str, sources: dict[str, str] | None = None) -> LoadedSpec:
    """Load `path` and its includes. `sources` collects every text read, even on error,
    so that the CLI can show the offending line."""
    spec = LoadedSpec(root=path)
    diags = Collector()
    texts = sources if sources is not None else {}
    _load_into(spec, path, (), None, diags, texts)
    diags.raise_if_any()
    return spec


def _load_into(
    spec: LoadedSpec,
    path: str,
    chain: tuple[str, ...],
    at: Span | None,
    diags: Collector,
    texts: dict[str, str],
) -> None:
    key = path = os.path.normpath(path)
    if key in chain:
        names = " -> ".join((*chain[chain.index(key) :], key))
        assert at is not None
        diags.error(codes.INCLUDE_CYCLE, f"include cycle: {names}", at)
        return
    if key in spec.files:
        return  # included twice through different paths: its statements count once
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if at is None:
            raise SpecError(
                [
                    Diagnostic(
                        codes.INCLUDE_MISSING,
                        f"cannot read {path}: {reason}",
                        Span(path, 0, 0, 0, 0),
                    )
                ]
            ) from None
        diags.error(codes.INCLUDE_MISSING, f"cannot read {path}: {reason}", at)
        return
    texts[path] = text
    try:
        sf = parse_file(text, path)
    except SpecError as err:
        diags.extend(err.diagnostics)
        return
    spec.files[key] = sf
    for stmt in sf.stmts:
        if stmt.keyword != "include":
            spec.stmts.append(stmt)
            continue
        target = _include_target(stmt, diags)
        if target is not None:
            child = os.path.join(os.path.dirname(path), target)
            _load_into(
                spec, os.path.normpath(child), (*chain, key), stmt.args[0].span, diags, texts
            )


def _include_target(stmt: Stmt, diags: Collector) -> str | None:
    if len(stmt.args) != 1 or stmt.args[0].kind not in ("string", "scalar") or stmt.block:
        diags.error(
            codes.ARGUMENTS, 'include takes one quoted path: include "file.herc"', stmt.span
        )
        return None
    return stmt.args[0].text
