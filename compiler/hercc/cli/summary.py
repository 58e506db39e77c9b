"""`hercc summary DIR`: summarise a build directory."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.diagnostics import OperationError

SUMMARY_HELP = "Summarise a build directory."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    s = subparsers.add_parser("summary", help=SUMMARY_HELP, description=SUMMARY_HELP)
    s.add_argument("build_dir", metavar="DIR")
    s.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    build_dir: str = args.build_dir
    path = os.path.join(build_dir, "ir.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        with open(os.path.join(build_dir, "manifest.json"), encoding="utf-8") as fh:
            files = json.load(fh)["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise OperationError(f"{build_dir}: not a hercc build directory ({exc})") from None
    from hercc.summary import render_summary

    console.out.write(render_summary(data, files))
    return ExitCode.OK
