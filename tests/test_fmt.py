"""hercc fmt: golden layouts, idempotence, same statements, every comment kept."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hercc.fmt import format_source
from hercc.parser import parse_text
from hercc.syntax import Stmt, Value

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "fmt"
INPUTS = sorted(GOLDEN.glob("*.in.herc"))
SAMPLES = [ROOT / "examples" / "reference.herc", *INPUTS, *GOLDEN.glob("*.out.herc")]


def fmt(text: str) -> str:
    return format_source(parse_text(text, "t.herc"))


def value_shape(v: Value) -> Any:
    return (v.kind, v.text, tuple(value_shape(i) for i in v.items))


def shape(stmts: tuple[Stmt, ...] | None) -> Any:
    if stmts is None:
        return None
    return tuple((s.keyword, tuple(value_shape(a) for a in s.args), shape(s.block)) for s in stmts)


def check_invariants(text: str) -> str:
    """Format text and check everything fmt promises about the result."""
    before = parse_text(text, "t.herc")
    out = format_source(before)
    after = parse_text(out, "t.herc")
    assert shape(after.stmts) == shape(before.stmts)
    assert [c.text for c in after.comments] == [c.text.rstrip() for c in before.comments]
    assert format_source(after) == out
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))
    assert not out.startswith("\n")
    for line in out.split("\n"):
        assert line == line.rstrip(), repr(line)
    return out


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_golden(path: Path) -> None:
    expected = path.with_name(path.name.replace(".in.", ".out.")).read_text(encoding="utf-8")
    assert fmt(path.read_text(encoding="utf-8")) == expected


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_invariants_on_samples(path: Path) -> None:
    check_invariants(path.read_text(encoding="utf-8"))


def test_reference_keeps_its_shape() -> None:
    out = fmt((ROOT / "examples" / "reference.herc").read_text(encoding="utf-8"))
    assert "  range     10.20.0.0/16  # IPv4 overlay range\n" in out
    assert "link delta beta { unreachable }  # delta's traffic to beta must be relayed\n" in out
    assert "workload web { node gamma }\n" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("\n\n;;\n", ""),
        ("# only\n\n\n# comments   \n", "# only\n\n# comments\n"),
        ("a 1\r\nbb 2  # crlf\r\n", "a  1\nbb 2  # crlf\n"),
        ("a 1\n\n\n\nb 2", "a 1\n\nb 2\n"),
        ('k "tab\there" x', 'k "tab\\there" x\n'),
        # a blank line is forced only around multi-line top-level statements
        ("a 1\nb { c; d }\ne 2\n", "a 1\n\nb {\n  c\n  d\n}\n\ne 2\n"),
        ("a { b }\nc {}\n", "a { b }\nc {}\n"),
        # the comment trails the outermost statement ending on its line
        ("a { b { c 1 } }  # x\n", "a {\n  b { c 1 }\n}  # x\n"),
        ("a { b 1\n}  # x\n", "a { b 1 }  # x\n"),
        ("a {\n  b 1  # x\n}\n", "a {\n  b 1  # x\n}\n"),
        # alignment runs end at blank lines, comment lines and blocks
        ("aaa 1\nb 2\n\ncc 3\nd 4\n", "aaa 1\nb   2\n\ncc 3\nd  4\n"),
        ("aaa 1\n# x\nb 2\n", "aaa 1\n# x\nb 2\n"),
        ("aaa 1\nb {}\ncc 2\nlonger\n", "aaa 1\nb {}\ncc 2\nlonger\n"),
    ],
)
def test_small_cases(text: str, expected: str) -> None:
    assert check_invariants(text) == expected


# ---------------------------------------------------------------- random trees

WORDS = ["a", "node", "x-1", "10.0.0.0/8", "[::1]:80", "+5", "eth0", "secret", "_"]
KEYWORDS = ["a", "bb", "network", "nat", "cost", "listen"]
STRINGS = st.text(alphabet='ab "\\\n\t\r\0#{};,é', max_size=6)

atoms = st.sampled_from(WORDS).map(lambda w: ("atom", w, ()))
strings = STRINGS.map(lambda s: ("string", s, ()))
calls = STRINGS.map(lambda s: ("call", "secret", (("string", s, ()),)))
scalars = st.one_of(atoms, strings, calls)
lists = st.lists(scalars, min_size=2, max_size=3).map(lambda xs: ("list", "", tuple(xs)))
args = st.lists(st.one_of(scalars, lists), max_size=3).map(tuple)


def stmt_trees(depth: int) -> st.SearchStrategy[Any]:
    blocks = st.none() if depth == 0 else st.one_of(st.none(), stmt_trees(depth - 1))
    one = st.tuples(st.sampled_from(KEYWORDS), args, blocks)
    return st.lists(one, max_size=3).map(tuple)


class Naive:
    """Prints a statement tree with random spacing, separators and comments."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.n = 0

    def comment(self) -> str:
        self.n += 1
        return f"# c{self.n}{self.rnd.choice(['', '  ', ' ; {'])}"

    def sp(self) -> str:
        return self.rnd.choice([" ", "  ", "\t", " \t "])

    def newline(self) -> str:
        """One or more newlines, maybe with comments; valid wherever `_sep+` is."""
        r = self.rnd.random()
        if r < 0.3:
            return "\n" + self.sp()
        if r < 0.5:
            return f"{self.sp()}{self.comment()}\n"
        if r < 0.7:
            return f"\n{self.sp()}{self.comment()}\n"
        if r < 0.85:
            return "\n\n\n"
        return ";" + self.sp()

    def value(self, v: Any) -> str:
        kind, text, items = v
        if kind == "atom":
            return str(text)
        if kind == "string":
            return self.quote(text)
        if kind == "call":
            return f"{text}{self.rnd.choice(['', ' '])}({self.quote(items[0][1])})"
        seps = [",", " , ", ",\n  ", f", {self.comment()}\n"]
        return "".join(
            (self.rnd.choice(seps) if i else "") + self.value(x) for i, x in enumerate(items)
        )

    def quote(self, s: str) -> str:
        esc = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\0": "\\0"}
        if self.rnd.random() < 0.5:  # else tabs and carriage returns stay raw
            esc |= {"\t": "\\t", "\r": "\\r"}
        return '"' + "".join(esc.get(ch, ch) for ch in s) + '"'

    def stmts(self, tree: Any) -> str:
        out = ""
        for i, (kw, vals, block) in enumerate(tree):
            if i:
                out += self.newline()
            out += kw + "".join(self.sp() + self.value(v) for v in vals)
            if block is not None:
                inner = self.stmts(block)
                lead = self.rnd.choice([" ", self.sp() + self.comment() + "\n", "\n", ";"])
                tail = self.rnd.choice([" ", "\n", self.newline()]) if inner else ""
                out += f"{self.rnd.choice(['', ' '])}{{{lead}{inner}{tail}}}"
        return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=stmt_trees(2), rnd=st.randoms(use_true_random=False))
def test_random_trees(tree: Any, rnd: random.Random) -> None:
    naive = Naive(rnd)
    text = naive.stmts(tree) + rnd.choice(["", "\n", naive.newline(), "\n" + naive.comment()])
    assert shape(parse_text(text, "t.herc").stmts) == tree, text  # the generator is sound
    check_invariants(text)
