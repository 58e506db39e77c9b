"""Helpers the build and CLI tests share: run hercc in this process, read a tree back."""

from __future__ import annotations

import io
from pathlib import Path

from hercc.cli import main as cli


def hercc_err(*argv: str) -> tuple[int, str]:
    """Exit code and stderr of `hercc ARGV`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, err.getvalue()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root: relative path -> its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
