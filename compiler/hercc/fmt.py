"""`hercc fmt`: the canonical layout of a .herc file, keeping every comment.

``format_source(parse_text(text, path))`` gives the formatted text. The output
parses to the same statements (keywords, arguments, blocks, order), keeps
every comment's text in the same order, and is a fixed point: formatting it
again changes nothing.

Layout rules
------------
* One statement per line (``;`` becomes a newline), 2 spaces per block level.
* Arguments are separated by one space; comma lists print on one line as
  ``a, b`` (even when the source split them across lines); strings are
  re-quoted, escaping ``\\ \" \n \t \r \0``; calls print as ``secret("x")``.
* A block prints ``keyword args {`` ... ``}``. It prints on one line,
  ``link a b { cost 5 }``, when it holds exactly one statement, that statement
  has no block, and no comment sits inside; an empty block without comments
  prints ``keyword args {}``.
* Alignment: in a run of consecutive statements without a block, the
  arguments start in one column, one space past the longest keyword of the
  run. A run ends at a blank line, a standalone comment line or a statement
  with a block (inline or not). Keywords without arguments (``nat``) do not
  widen the column.
* Trailing comments stay on their line. In a run of consecutive one-line
  statements of a block that all carry one (no blank or comment line between),
  they align one column, 2 spaces past the longest code; elsewhere they sit
  2 spaces after the code.
* Where a comment goes, by its line L:
  - some statement ends on L: it trails the outermost one (the last one, if
    several at that depth), e.g. after the ``}`` of ``link a b { cost 5 }``;
  - L is the line of a block's ``{``: it stays after the ``{``;
  - L is inside a statement's arguments (a comma list split over lines): it
    moves to its own line just before that statement;
  - otherwise it is a comment line: it stays before the next statement of its
    block, indented to its level, or at the end of its block (before ``}``)
    or of the file.
  Comment text is kept exactly, minus trailing whitespace.
* Blank lines: one or more blank lines between two items (statements or
  comment lines) of a block become one; there is never one right after ``{``,
  right before ``}`` or at the start or end of the file. Two top-level
  statements are always separated by a blank line when either spans several
  lines (it goes right after the first one, before any comments of the
  second).
* No trailing whitespace; the text ends with exactly one newline (an empty
  file stays empty).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from hercc.syntax import Comment, SourceFile, Stmt, Value

__all__ = ["format_source"]

_INDENT = "  "
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
_WORD = re.compile(r"[A-Za-z0-9_.:/\[\]+-]+")


@dataclass(eq=False)
class _Node:
    stmt: Stmt
    children: list[_Node]
    ends: list[int]  # end lines of the children, sorted
    head: int  # line of the last argument, hence of the `{` when there is a block
    lead: list[Comment] = field(default_factory=list)  # from inside the arguments
    opening: Comment | None = None  # on the `{` line
    trailing: Comment | None = None
    inner: list[Comment] = field(default_factory=list)  # comment lines in the block

    @property
    def first(self) -> int:
        return self.stmt.span.line

    @property
    def end(self) -> int:
        return self.stmt.end_line


@dataclass
class _Row:
    code: str
    comment: str | None = None
    group: int = -1  # rows of one group align their trailing comments


def format_source(sf: SourceFile) -> str:
    """The canonical text of a parsed .herc file (see the module docstring)."""
    top = [_node(s) for s in sf.stmts]
    top_ends = [n.end for n in top]
    top_inner: list[Comment] = []
    for c in sf.comments:
        _place(c, top, top_ends, top_inner)
    out = _Out()
    _items(top, top_inner, 0, out, top_level=True)
    lines = [_line(r, out) for r in out.rows]
    return "\n".join(lines) + "\n" if lines else ""


def _node(s: Stmt) -> _Node:
    head = s.args[-1].span.end_line if s.args else s.span.line
    children = [_node(c) for c in s.block or ()]
    return _Node(s, children, [c.end for c in children], head)


def _place(c: Comment, top: list[_Node], top_ends: list[int], top_inner: list[Comment]) -> None:
    """Attach a comment to its statement, walking down from the outermost level.

    Siblings are in source order, so their end lines are sorted: bisect keeps
    this linear in the depth even for a file of thousands of statements.
    """
    line = c.line
    seq, ends, owner = top, top_ends, None
    while True:
        lo, hi = bisect_left(ends, line), bisect_right(ends, line)
        if lo < hi:  # the last statement ending on this line, at the outermost level
            seq[hi - 1].trailing = c
            return
        hit = _containing(seq, ends, line)
        if hit is None:
            (owner.inner if owner else top_inner).append(c)
            return
        if line < hit.head:
            hit.lead.append(c)
            return
        if line == hit.head and _containing(hit.children, hit.ends, line) is None:
            hit.opening = c
            return
        seq, ends, owner = hit.children, hit.ends, hit


def _containing(seq: list[_Node], ends: list[int], line: int) -> _Node | None:
    k = bisect_left(ends, line)
    return seq[k] if k < len(seq) and seq[k].first <= line else None


class _Out:
    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.groups: dict[int, int] = {}  # group -> width of its longest code
        self._next = 0

    def group(self) -> int:
        self._next += 1
        return self._next

    def add(self, code: str, comment: Comment | None = None, group: int = -1) -> None:
        text = comment.text.rstrip() if comment else None
        self.rows.append(_Row(code, text, group if text else -1))
        if text and group >= 0:
            self.groups[group] = max(self.groups.get(group, 0), len(code))


def _line(r: _Row, out: _Out) -> str:
    if r.comment is None:
        return r.code.rstrip()
    width = out.groups[r.group] if r.group >= 0 else len(r.code)
    return f"{r.code.ljust(width)}  {r.comment}"


def _items(
    nodes: list[_Node], comments: list[Comment], depth: int, out: _Out, *, top_level: bool
) -> None:
    """Render one block body (or the file): statements and comment lines, in line order."""
    items: list[_Node | Comment] = sorted(
        [*nodes, *comments], key=lambda i: i.line if isinstance(i, Comment) else i.first
    )
    blank = [False] * len(items)
    prev_end = 0
    for k, it in enumerate(items):
        start, end = (it.line, it.line) if isinstance(it, Comment) else (it.first, it.end)
        blank[k] = k > 0 and start > prev_end + 1
        prev_end = end
    if top_level:
        _separate_multiline(items, blank)

    keyword_col = [0] * len(items)
    for run in _runs(items, blank, lambda n: n.stmt.block is None):
        col = max((len(n.stmt.keyword) for n in _nodes(items, run) if n.stmt.args), default=0)
        for k in run:
            keyword_col[k] = col
    group = [-1] * len(items)
    for run in _runs(items, blank, lambda n: n.trailing is not None and _one_line(n)):
        g = out.group()
        for k in run:
            group[k] = g

    indent = _INDENT * depth
    for k, it in enumerate(items):
        if blank[k]:
            out.add("")
        if isinstance(it, Comment):
            out.add(indent + it.text.rstrip())
            continue
        for c in it.lead:
            out.add(indent + c.text.rstrip())
        if _one_line(it):
            out.add(indent + _inline(it, keyword_col[k]), it.trailing, group[k])
        else:
            out.add(f"{indent}{_header(it.stmt)} {{", it.opening)
            _items(it.children, it.inner, depth + 1, out, top_level=False)
            out.add(indent + "}", it.trailing)


def _separate_multiline(items: list[_Node | Comment], blank: list[bool]) -> None:
    """Force a blank line between two top-level statements when either is multi-line."""
    last = -1
    for k, it in enumerate(items):
        if isinstance(it, Comment):
            continue
        prev = items[last] if last >= 0 else None
        multi = isinstance(prev, _Node) and not (_one_line(prev) and _one_line(it))
        if multi and not any(blank[last + 1 : k + 1]):
            blank[last + 1] = True
        last = k


def _runs(
    items: list[_Node | Comment], blank: list[bool], member: Callable[[_Node], bool]
) -> list[list[int]]:
    """Indices of maximal runs of adjacent member statements, split by blank or comment lines."""
    runs: list[list[int]] = []
    for k, it in enumerate(items):
        if isinstance(it, Comment) or not member(it):
            continue
        if runs and runs[-1][-1] == k - 1 and not blank[k] and not it.lead:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def _nodes(items: list[_Node | Comment], run: list[int]) -> list[_Node]:
    return [it for it in (items[k] for k in run) if isinstance(it, _Node)]


def _one_line(n: _Node) -> bool:
    """Whether the statement prints on one line (no block, `{}` or an inline block)."""
    if n.stmt.block is None:
        return True
    if n.opening or n.inner or len(n.children) > 1:
        return False
    return all(c.stmt.block is None and c.trailing is None and not c.lead for c in n.children)


def _inline(n: _Node, col: int) -> str:
    s = n.stmt
    if s.block is None:
        if not s.args:
            return s.keyword
        return s.keyword.ljust(col) + " " + " ".join(_value(a) for a in s.args)
    if not n.children:
        return _header(s) + " {}"
    return f"{_header(s)} {{ {_header(n.children[0].stmt)} }}"


def _header(s: Stmt) -> str:
    return " ".join([s.keyword, *(_value(a) for a in s.args)])


def _value(v: Value) -> str:
    if v.kind == "string":
        return _quote(v.text)
    if v.kind == "call":
        return f"{v.text}({_quote(v.items[0].text)})"
    if v.kind == "list":
        return ", ".join(_value(i) for i in v.items)
    if v.kind == "scalar" and not _WORD.fullmatch(v.text):
        return _quote(v.text)  # a YAML scalar that is not a bare word
    return v.text


def _quote(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'
