"""The .herc front end: text -> generic syntax tree (syntax.py), via lark.

The LALR parser runs with an inline transformer, so no intermediate parse tree
is materialised (this keeps a 5,000-node spec well under a second). The
transformer holds one parse's state (file name, comments, escape errors), and
lark makes it part of the parser, so every parse gets a parser of its own,
assembled in about a millisecond from grammar tables analysed once per process.
Parses share nothing they write: threads may parse at the same time.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, cast

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import UnexpectedEOF
from lark.grammar import Rule
from lark.lexer import TerminalDef

from hercc import codes
from hercc.diagnostics import Diagnostic, SpecError
from hercc.source import Span
from hercc.syntax import Comment, SourceFile, Stmt, Value

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}

# How a parser's "expected" terminals read to a person.
_TERMINAL_WORDS = {
    "WORD": "a word",
    "STRING": "a string",
    "LBRACE": '"{"',
    "RBRACE": '"}"',
    "COMMA": '","',
    "LPAR": '"("',
    "RPAR": '")"',
    "SEMICOLON": '";"',
    "_NL": "end of line",
    "$END": "end of file",
}


class _Block:
    __slots__ = ("close_line", "stmts")

    def __init__(self, stmts: tuple[Stmt, ...], close_line: int) -> None:
        self.stmts = stmts
        self.close_line = close_line


class _ToSyntax(Transformer[Token, tuple[Stmt, ...]]):
    """Builds syntax.py objects directly from LALR reductions; one per parse."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.comments: list[Comment] = []
        self.errors: list[Diagnostic] = []

    def collect_comment(self, tok: Token) -> Token:
        """The lexer's callback for COMMENT, which the grammar ignores: fmt keeps comments."""
        self.comments.append(Comment(str(tok), tok.line or 0, tok.column or 0))
        return tok

    def _span(self, tok: Token) -> Span:
        return Span(
            self.file,
            tok.line or 0,
            tok.column or 0,
            tok.end_line or tok.line or 0,
            tok.end_column or (tok.column or 0) + 1,
        )

    def atom(self, children: list[Token]) -> Value:
        tok = children[0]
        return Value("atom", str(tok), self._span(tok))

    def string(self, children: list[Token]) -> Value:
        tok = children[0]
        return Value("string", self._unescape(tok), self._span(tok))

    def call(self, children: list[Token]) -> Value:
        name, arg = children
        inner = Value("string", self._unescape(arg), self._span(arg))
        span = self._span(name)
        whole = Span(span.file, span.line, span.col, inner.span.end_line, inner.span.end_col + 1)
        return Value("call", str(name), whole, (inner,))

    def comma_list(self, children: list[Value]) -> Value:
        first, last = children[0].span, children[-1].span
        span = Span(first.file, first.line, first.col, last.end_line, last.end_col)
        return Value("list", "", span, tuple(children))

    def block(self, children: list[Any]) -> _Block:
        close: Token = children[-1]
        return _Block(tuple(children[1:-1]), close.line or 0)

    def stmt(self, children: list[Any]) -> Stmt:
        keyword: Token = children[0]
        rest = children[1:]
        block: _Block | None = rest.pop() if rest and isinstance(rest[-1], _Block) else None
        args = tuple(rest)
        if block is not None:
            end_line = block.close_line
        elif args:
            end_line = args[-1].span.end_line
        else:
            end_line = keyword.end_line or keyword.line or 0
        return Stmt(
            keyword=str(keyword),
            span=self._span(keyword),
            args=args,
            block=block.stmts if block else None,
            end_line=end_line,
        )

    def start(self, children: list[Stmt]) -> tuple[Stmt, ...]:
        return tuple(children)

    def _unescape(self, tok: Token) -> str:
        raw = str(tok)[1:-1]
        if "\\" not in raw:
            return raw
        out: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                else:
                    col = (tok.column or 0) + 1 + i
                    self.errors.append(
                        Diagnostic(
                            codes.SYNTAX,
                            f'unknown escape "\\{nxt}" in string',
                            Span(self.file, tok.line or 0, col, tok.line or 0, col + 2),
                            hint='use \\\\, \\", \\n, \\t, \\r or \\0',
                        )
                    )
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)


@cache
def _grammar() -> str:
    return resources.files("hercc").joinpath("grammar/herc.lark").read_text(encoding="utf-8")


@cache
def _tables() -> tuple[Any, Any]:
    """The analysed grammar (terminals, rules, LALR table), serialised; built once, only read."""
    lark = Lark(_grammar(), parser="lalr", propagate_positions=False, maybe_placeholders=False)
    return cast(tuple[Any, Any], lark.memo_serialize([TerminalDef, Rule]))


def _parser_for(builder: _ToSyntax) -> Lark:
    """A parser for one parse: it reduces into `builder` and reports comments to it.

    Assembled from the tables the way lark's own cache loads a parser with a
    new transformer (about 1 ms); analysing the grammar again takes ten times
    as long.
    """
    data, memo = _tables()
    parser = Lark._load_from_dict(  # type: ignore[no-untyped-call]  # lark leaves it untyped
        data, memo, transformer=builder, lexer_callbacks={"COMMENT": builder.collect_comment}
    )
    return cast(Lark, parser)


def parse_text(text: str, path: str) -> SourceFile:
    """Parse .herc text; raises SpecError with every syntax error found."""
    builder = _ToSyntax(path)
    parser = _parser_for(builder)
    errors: list[Diagnostic] = []
    seen_lines: set[int] = set()

    def on_error(exc: UnexpectedInput) -> bool:
        # Record one error per line and let LALR skip the token, so a file
        # with several mistakes reports them all.
        line = getattr(exc, "line", 0) or 0
        if line not in seen_lines:
            seen_lines.add(line)
            errors.append(_syntax_diagnostic(exc, path, text))
        return len(errors) < 50

    try:
        stmts = cast(tuple[Stmt, ...], parser.parse(text, on_error=on_error))
    except UnexpectedInput as exc:
        line = getattr(exc, "line", 0) or 0
        if line not in seen_lines:
            errors.append(_syntax_diagnostic(exc, path, text))
        stmts = ()
    errors.extend(builder.errors)
    if errors:
        raise SpecError(errors)
    return SourceFile(path, text, stmts, tuple(builder.comments))


def _syntax_diagnostic(exc: UnexpectedInput, path: str, text: str) -> Diagnostic:
    line = getattr(exc, "line", 0) or 0
    col = getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        hint = None
        if ch == "'":
            hint = 'strings take double quotes: "..."'
        elif ch == '"':
            hint = "this string is not closed on its line"
        return Diagnostic(
            codes.SYNTAX, f"unexpected character {ch!r}", Span.point(path, line, col), hint
        )
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            line, col = _end_of(text)
            what = "end of file"
        elif tok.type == "_NL":
            what = "end of line"
        else:
            what = repr(str(tok))
        expected = sorted({_TERMINAL_WORDS.get(t, t) for t in exc.expected})
        hint = None
        if '"}"' in expected and tok.type == "$END":
            opened = _unclosed_brace_line(text)
            hint = f'the block opened on line {opened} is not closed: add "}}"' if opened else None
        elif tok.type == "RBRACE":
            hint = 'this "}" closes no block'
        return Diagnostic(
            codes.SYNTAX,
            f"unexpected {what}; expected {' or '.join(expected)}",
            Span.point(path, line, col),
            hint,
        )
    if isinstance(exc, UnexpectedEOF):
        return Diagnostic(codes.SYNTAX, "unexpected end of file", Span.point(path, *_end_of(text)))
    return Diagnostic(codes.SYNTAX, str(exc).splitlines()[0], Span.point(path, line, col))


def _end_of(text: str) -> tuple[int, int]:
    """Line and column just past the last character."""
    return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1


_BRACES = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{}]')


def _unclosed_brace_line(text: str) -> int | None:
    """The line of the innermost `{` left open (strings and comments skipped)."""
    stack: list[int] = []
    for m in _BRACES.finditer(text):
        if m.group() == "{":
            stack.append(text.count("\n", 0, m.start()) + 1)
        elif m.group() == "}" and stack:
            stack.pop()
    return stack[-1] if stack else None
