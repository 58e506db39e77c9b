"""The generic syntax tree both front ends (.herc and YAML) produce.

A spec is a tuple of statements; a statement is a keyword, its arguments and
an optional block of further statements. Meaning is given later, by the
option tables of build_ast/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hercc.source import Span

ValueKind = Literal["atom", "string", "call", "list", "scalar"]


@dataclass(frozen=True, slots=True)
class Value:
    """One argument.

    kind: ``atom`` a bare word; ``string`` a quoted string (text is unescaped);
    ``call`` a function call such as ``secret("name")`` (text is the function
    name, items holds the string argument); ``list`` a comma list (items);
    ``scalar`` a YAML scalar, which may stand where an atom or a string does.
    """

    kind: ValueKind
    text: str
    span: Span
    items: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Stmt:
    keyword: str
    span: Span  # of the keyword
    args: tuple[Value, ...]
    block: tuple[Stmt, ...] | None
    end_line: int  # last line of the statement, for attaching comments
    origin: str = field(default="herc")  # "herc" or "yaml"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A parsed file: its statements, and (for .herc) its comments for fmt."""

    path: str
    text: str
    stmts: tuple[Stmt, ...]
    comments: tuple[Comment, ...] = ()
