"""Diagnostics: typed errors that point at source, and their rendering.

Every stage raises SpecError with all the problems it found; only the CLI
turns them into text (or JSON) and an exit code.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hercc.source import Span


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"  # or "warning": reported, and the command goes on

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.col, self.code)


class HerccError(Exception):
    """Base of every error hercc raises on purpose."""


class SpecError(HerccError):
    """The spec is invalid; carries every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(f"{first.span}: {first.message}" if first else "invalid spec")


class UsageError(HerccError):
    """The command line asked for something impossible (exit 2)."""


class OperationError(HerccError):
    """An operation on files or the system failed (exit 1), e.g. --frozen lock drift."""


class LabError(OperationError):
    """A lab could not be built, used or torn down (exit 1)."""


class Collector:
    """Accumulates diagnostics so a run reports all of them, not only the first.

    Errors (`items`) stop the run at the next raise_if_any; warnings do not.
    """

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, hint))

    def warning(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.warnings.append(Diagnostic(code, message, span, hint, "warning"))

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self.items.extend(items)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f'did you mean "{match[0]}"?' if match else None


def render_text(diags: Sequence[Diagnostic], sources: Mapping[str, str]) -> str:
    """netplan/rustc style: location, message, the source line and a caret."""
    out = _located(diags, sources)
    count = len(diags)
    out.append(f"{count} error{'s' if count != 1 else ''} found; nothing was written.")
    return "\n".join(out) + "\n"


def render_warnings(diags: Sequence[Diagnostic], sources: Mapping[str, str]) -> str:
    """Warnings as render_text shows errors, with no summary line (nothing stopped)."""
    ordered = sorted(diags, key=Diagnostic.sort_key)
    return "".join(line + "\n" for line in _located(ordered, sources))


def _located(diags: Sequence[Diagnostic], sources: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for d in diags:
        out.append(f"{d.span}: {d.severity}[{d.code}]: {d.message}")
        text = sources.get(d.span.file)
        if text is not None and d.span.line > 0:
            lines = text.splitlines()
            if d.span.line <= len(lines):
                src = lines[d.span.line - 1].expandtabs(1)
                width = 1
                if d.span.end_line == d.span.line and d.span.end_col > d.span.col:
                    width = d.span.end_col - d.span.col
                gutter = " " * len(str(d.span.line))
                out.append(f"{d.span.line} | {src}")
                out.append(f"{gutter} | {' ' * (d.span.col - 1)}{'^' * width}")
        if d.hint:
            out.append(f"  = hint: {d.hint}")
    return out


def render_json(diags: Sequence[Diagnostic]) -> str:
    data = [
        {
            "code": d.code,
            "message": d.message,
            "file": d.span.file,
            "line": d.span.line,
            "col": d.span.col,
            "end_line": d.span.end_line,
            "end_col": d.span.end_col,
            "hint": d.hint,
        }
        for d in diags
    ]
    return json.dumps({"ok": False, "errors": data}, indent=2, sort_keys=True) + "\n"
