"""Option tables and the one reader that applies them.

A table maps each option of a block to an Option (its kind and value parser);
`read_block` applies one, so every block reports unknown, repeated and missing
options the same way, for .herc and YAML alike. New blocks get a table here,
never a reader of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hercc import codes, values
from hercc.diagnostics import Collector, did_you_mean
from hercc.source import Span
from hercc.syntax import Stmt, Value

Kind = Literal["one", "list", "flag", "repeat", "custom", "block"]


@dataclass(frozen=True)
class Option:
    kind: Kind
    parse: Callable[..., Any] | None = None
    required: bool = False
    repeat: bool = False  # for custom/block kinds


@dataclass
class Fields:
    """What read_block found in one block."""

    owner: Stmt
    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    many: dict[str, list[tuple[Any, Span]]] = field(default_factory=dict)
    complete: bool = False  # every required option was given, with a valid value

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def items(self, key: str) -> list[tuple[Any, Span]]:
        return self.many.get(key, [])


def read_block(stmt: Stmt, table: dict[str, Option], what: str, diags: Collector) -> Fields:
    found = Fields(stmt)
    what = " ".join(what.split())  # "vxlan" when the name itself is missing
    for child in stmt.block or ():
        opt = table.get(child.keyword)
        if opt is None:
            diags.error(
                codes.UNKNOWN,
                f'unknown option "{child.keyword}" in {what}',
                child.span,
                did_you_mean(child.keyword, table) or f"{what} takes: {', '.join(sorted(table))}",
            )
            continue
        repeatable = opt.kind in ("repeat", "list") or opt.repeat
        if child.keyword in found.spans and not repeatable:
            first = found.spans[child.keyword]
            diags.error(
                codes.REPEATED,
                f'"{child.keyword}" given twice in {what}',
                child.span,
                f"first given at line {first.line}",
            )
            continue
        if opt.kind != "block" and child.block is not None:
            diags.error(codes.ARGUMENTS, f'"{child.keyword}" takes no {{ block }}', child.span)
            continue
        found.spans.setdefault(child.keyword, child.span)
        _read_option(child, opt, found, diags)
    for key, opt in table.items():
        if opt.required and key not in found.spans:
            diags.error(codes.MISSING, f'{what} needs "{key}"', stmt.span)
    found.complete = all(k in found.values for k, opt in table.items() if opt.required)
    return found


def _read_option(child: Stmt, opt: Option, found: Fields, diags: Collector) -> None:
    key = child.keyword
    if opt.kind == "flag":
        if child.args:
            diags.error(codes.ARGUMENTS, f'"{key}" takes no value', child.args[0].span)
        found.values[key] = True
        return
    if opt.kind in ("custom", "block"):
        assert opt.parse is not None
        result = opt.parse(child, diags)
        if result is not None:
            found.many.setdefault(key, []).append((result, child.span))
            found.values[key] = result
        return
    assert opt.parse is not None
    if opt.kind == "list":
        items = _list_items(child, diags)
        parsed = [opt.parse(v, diags) for v in items]
        found.many.setdefault(key, []).extend(
            (p, v.span) for p, v in zip(parsed, items, strict=True) if p is not None
        )
        found.values[key] = tuple(p for p, _ in found.many[key])
        return
    if len(child.args) != 1 or child.args[0].kind == "list":
        _arity(child, "one value", diags)
        return
    value = opt.parse(child.args[0], diags)
    if value is None:
        return
    if opt.kind == "repeat":
        found.many.setdefault(key, []).append((value, child.args[0].span))
    else:
        found.values[key] = value
        found.spans[key] = child.args[0].span


def _list_items(stmt: Stmt, diags: Collector) -> Sequence[Value]:
    if len(stmt.args) != 1:
        _arity(stmt, "one value or a comma list", diags)
        return ()
    arg = stmt.args[0]
    return arg.items if arg.kind == "list" else (arg,)


def _arity(stmt: Stmt, expected: str, diags: Collector) -> None:
    where = stmt.args[0].span if stmt.args else stmt.span
    got = (
        "nothing" if not stmt.args else f"{len(stmt.args)} value{'s' if len(stmt.args) > 1 else ''}"
    )
    if len(stmt.args) == 1 and stmt.args[0].kind == "list":
        got = "a list"
    diags.error(codes.ARGUMENTS, f'"{stmt.keyword}" takes {expected}, found {got}', where)


def read_head(
    stmt: Stmt, count: int, diags: Collector, parse: Callable[..., Any] = values.name
) -> list[Any] | None:
    """The words after a block keyword: `node NAME`, `link A B`."""
    if len(stmt.args) != count or any(a.kind == "list" for a in stmt.args):
        expected = {0: "no name", 1: "a name", 2: "two node names"}[count]
        _arity(stmt, expected, diags)
        return None
    if stmt.block is None and stmt.keyword not in ("link", "include"):
        diags.error(codes.ARGUMENTS, f'"{stmt.keyword}" needs a {{ block }}', stmt.span)
        return None
    parsed = [parse(a, diags) for a in stmt.args]
    return None if any(p is None for p in parsed) else parsed


def label(stmt: Stmt) -> str:
    """The block's name as written, for messages ("" when it is missing)."""
    return stmt.args[0].text if stmt.args else ""
