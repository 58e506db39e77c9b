"""`hercc summary DIR`: summarise a build directory."""

from __future__ import annotations

import argparse
from typing import Any

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode

SUMMARY_HELP = "Summarise a build directory."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    s = subparsers.add_parser("summary", help=SUMMARY_HELP, description=SUMMARY_HELP)
    s.add_argument("build_dir", metavar="DIR")
    s.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.build_dir import read_build
    from hercc.summary import render_summary

    console.out.write(render_summary(read_build(args.build_dir)))
    return ExitCode.OK
