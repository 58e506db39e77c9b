"""The hercc command: one parser, one mapping from errors to exit codes, main and run.

Each command module registers its parser with `register(subparsers)` and
sets `run(args, console) -> exit code` as the parser's default; main calls
it and turns whatever it raises into a message and an ExitCode (`_report`):

    SpecError          the diagnostics (text on stderr, JSON on stdout)    1
    UsageError         `hercc: error: ...` (or JSON); argparse's           2
                       (CommandLineError) after the command's usage line
    other HerccError   `hercc: error: ...` (or JSON)                       1
    KeyboardInterrupt  `hercc: interrupted`                              130
    anything else      `hercc: internal error (a bug ...)`, one line      70

"Or JSON": with `--format json`, an error is one JSON object on stdout and
nothing on stderr, even when argparse refused the rest of the command line.

A reader that stops reading (`hercc ... | head -1`) is no error: the command
runs to its end with the rest of its output dropped (cli/console.py's Output),
and hercc exits 141 (BROKEN_PIPE) without a word, as a Unix tool that SIGPIPE
ended. It is not killed by SIGPIPE itself: that would stop an apply half-way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import NoReturn, TextIO, cast

from hercc import __version__
from hercc.cli import (
    build,
    check,
    dataplane,
    diff,
    flows,
    fmt,
    graph,
    keys,
    lab,
    plan_apply,
    route,
    summary,
)
from hercc.cli.console import Console, Output
from hercc.cli.exitcode import ExitCode
from hercc.diagnostics import HerccError, SpecError, UsageError, render_json, render_text


class CommandLineError(UsageError):
    """A command line that argparse refused; text output shows `usage` first."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """argparse whose errors are raised (exit 2), to be printed as every other error."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(message, self.format_usage())


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="hercc", description="Compile Hercules overlay network specs.")
    p.add_argument("--version", action="version", version=f"hercc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in (check, build, fmt, route, graph, summary, keys, lab, diff, plan_apply):
        command.register(sub)
    for command in (flows, dataplane):
        command.register(sub)
    return p


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run `hercc ARGV`, printing to out and err (default: stdout, stderr); the exit code."""
    streams = Output(sys.stdout if out is None else out), Output(sys.stderr if err is None else err)
    # an Output is a TextIO in all but name (io.TextIOBase is not typing.TextIO)
    console = Console(cast(TextIO, streams[0]), cast(TextIO, streams[1]))
    code = _run(argv, console)
    for stream in streams:
        stream.flush()
    return ExitCode.BROKEN_PIPE if any(s.lost for s in streams) else code


def _run(argv: Sequence[str] | None, console: Console) -> int:
    # until argparse accepts the command line, believe it when it asks for --format json
    fmt_json = _asks_for_json(sys.argv[1:] if argv is None else argv)
    try:
        # argparse prints help, version and usage itself, to sys.stdout and sys.stderr
        with redirect_stdout(console.out), redirect_stderr(console.err):
            args = parser().parse_args(argv)
        fmt_json = getattr(args, "format", "text") == "json"
        code: int = args.run(args, console)
        return code
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        return _report(exc, console, fmt_json)


def _report(exc: BaseException, console: Console, fmt_json: bool) -> int:
    """The one mapping from an error to what is printed and the exit code."""
    if isinstance(exc, SpecError):
        if fmt_json:
            console.out.write(render_json(exc.diagnostics))
        else:
            console.err.write(render_text(exc.diagnostics, console.sources))
        return ExitCode.ERROR
    if isinstance(exc, UsageError):
        if isinstance(exc, CommandLineError) and not fmt_json:
            console.err.write(exc.usage)
        _fail(console, str(exc), "usage", fmt_json)
        return ExitCode.USAGE
    if isinstance(exc, HerccError):
        _fail(console, str(exc), "operation", fmt_json)
        return ExitCode.ERROR
    if isinstance(exc, KeyboardInterrupt):
        console.err.write("hercc: interrupted\n")
        return ExitCode.INTERRUPTED
    if isinstance(exc, SystemExit):  # argparse --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else ExitCode.OK
    console.err.write(
        f"hercc: internal error (a bug in hercc {__version__}; please report it): "
        f"{type(exc).__name__}: {exc} at {_innermost_frame(exc)}\n"
    )
    return ExitCode.INTERNAL


def _asks_for_json(argv: Sequence[str]) -> bool:
    """Whether a command line says `--format json` (or `--format=json`) before any `--`."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg == "--format=json" or (arg == "--format" and list(argv[i + 1 : i + 2]) == ["json"]):
            return True
    return False


def _fail(console: Console, message: str, kind: str, fmt_json: bool) -> None:
    """Errors that are not about a place in the spec: one line, or JSON for pipelines."""
    if fmt_json:
        data = {"ok": False, "error": message, "kind": kind}
        console.out.write(json.dumps(data, indent=2) + "\n")
    else:
        console.err.write(f"hercc: error: {message}\n")


def _innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


def run() -> NoReturn:
    code = main()
    if code == ExitCode.BROKEN_PIPE:
        _discard_output()
    sys.exit(code)


def _discard_output() -> None:
    """Point stdout and stderr at /dev/null, as the Python docs advise (signal module,
    "Note on SIGPIPE"): what is still buffered for the closed pipe is flushed at exit,
    and would print "Exception ignored ... BrokenPipeError" otherwise."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    os.close(devnull)
