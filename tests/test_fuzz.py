"""No input ever produces a traceback: mutate reference.herc and compile.

Mutations: drop, duplicate and swap tokens, insert random bytes, truncate.
Any outcome is fine except an internal error (exit 70) or an exception
escaping the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hercc.cli import main as cli
from hercc.diagnostics import SpecError
from hercc.fmt import format_source
from hercc.parser import parse_text
from tests.conftest import EXAMPLES

REFERENCE = (EXAMPLES / "reference.herc").read_text()
TOKENS = re.findall(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|\n|[ \t]+|[{};,()]|[^\s{};,()"#]+', REFERENCE)
assert "".join(TOKENS) == REFERENCE


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    tokens = list(TOKENS)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "bytes", "truncate", "replace"]))
        i = draw(st.integers(0, len(tokens) - 1))
        if op == "drop":
            del tokens[i]
        elif op == "dup":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "replace":
            tokens[i] = draw(st.sampled_from(TOKENS))
        elif op == "bytes":
            raw = draw(st.binary(min_size=1, max_size=8))
            tokens.insert(i, raw.decode("latin-1"))
        else:
            tokens = tokens[:i]
        if not tokens:
            tokens = [""]
    return "".join(tokens).encode("latin-1", errors="replace")


# capsys is read (and so reset) on every example.
@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated())
def test_mutated_reference_never_crashes(
    data: bytes, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path: Path = tmp_path_factory.getbasetemp() / "fuzz.herc"
    path.write_bytes(data)
    code = cli.main(["check", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err
    try:
        formatted = format_source(parse_text(data.decode("latin-1"), "fuzz.herc"))
    except SpecError:
        return
    parse_text(formatted, "fuzz.herc")  # what fmt prints must parse again
