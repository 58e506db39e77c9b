"""`hercc fmt SPEC...`: print a .herc file in canonical layout, keeping comments."""

from __future__ import annotations

import argparse
from typing import Any

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.diagnostics import UsageError

FMT_HELP = "Print a .herc file in canonical layout, keeping comments."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    f = subparsers.add_parser("fmt", help=FMT_HELP, description=FMT_HELP)
    f.add_argument("specs", nargs="+", metavar="SPEC")
    mode = f.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not canonical")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")
    f.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.fmt import format_source
    from hercc.loader import is_yaml, read_text
    from hercc.parser import parse_text
    from hercc.sysio.files import write_atomic

    formatted: dict[str, tuple[str, str]] = {}
    for path in args.specs:
        if is_yaml(path):
            raise UsageError(f"{path}: fmt formats .herc files; YAML specs keep their own layout")
        try:
            text = read_text(path)
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror}") from None
        console.sources[path] = text
        formatted[path] = (text, format_source(parse_text(text, path)))
    status = ExitCode.OK
    for path, (text, canon) in formatted.items():
        if args.check:
            if text != canon:
                console.err.write(f"{path}: not canonical (run `hercc fmt --write {path}`)\n")
                status = ExitCode.ERROR
        elif args.write:
            if text != canon:
                write_atomic(path, canon)
                console.err.write(f"formatted {path}\n")
        else:
            console.out.write(canon)
    return status
