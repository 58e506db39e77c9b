"""Shared helpers for the hercc tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.diagnostics import Diagnostic, SpecError
from hercc.pipeline import Compiled, compile_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED_REFERENCE = ROOT.parent / "shared" / "spec" / "reference.herc"
MARK = "@@"


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def compile_text(tmp: Path, text: str, name: str = "spec.herc") -> Compiled:
    return compile_spec(write(tmp, name, text), use_lock=False)


def marked(text: str) -> tuple[str, int, int]:
    """Strip the @@ marker; return the text and the marker's 1-based line and column."""
    index = text.index(MARK)
    before = text[:index]
    line = before.count("\n") + 1
    col = index - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), line, col


def errors_of(tmp: Path, text: str, name: str = "spec.herc") -> list[Diagnostic]:
    with pytest.raises(SpecError) as info:
        compile_text(tmp, text, name)
    return list(info.value.diagnostics)


@pytest.fixture(scope="session", autouse=True)
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This run's labs live in a directory of their own ($HERCULES_LAB_DIR, inherited by
    `python -m hercc` subprocesses): `lab status` never sees another run's labs."""
    root = tmp_path_factory.mktemp("labs")
    old = os.environ.get("HERCULES_LAB_DIR")
    os.environ["HERCULES_LAB_DIR"] = str(root)
    yield root
    if old is None:
        del os.environ["HERCULES_LAB_DIR"]
    else:
        os.environ["HERCULES_LAB_DIR"] = old


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    old = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)
