"""`hercc summary DIR`: summarise a build directory."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from hercc import ir
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.diagnostics import OperationError

SUMMARY_HELP = "Summarise a build directory."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    s = subparsers.add_parser("summary", help=SUMMARY_HELP, description=SUMMARY_HELP)
    s.add_argument("build_dir", metavar="DIR")
    s.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.summary import render_summary

    build_dir: str = args.build_dir
    data = _read(build_dir, "ir.json")
    files = _read(build_dir, "manifest.json").get("files")
    if not isinstance(data.get("ir_version"), int):
        raise _not_a_build(build_dir, "ir.json", "no ir_version")
    if data["ir_version"] != ir.IR_VERSION:
        raise OperationError(
            f"{build_dir}/ir.json: ir_version {data['ir_version']}, this hercc reads "
            f"{ir.IR_VERSION} (rebuild it with this hercc)"
        )
    if not isinstance(files, dict):
        raise _not_a_build(build_dir, "manifest.json", "no files object")
    try:
        text = render_summary(data, files)
    except KeyError as exc:
        raise _not_a_build(build_dir, "ir.json", f"missing {exc}") from None
    except (TypeError, ValueError) as exc:  # a value of the wrong kind
        raise _not_a_build(build_dir, "ir.json", f"unexpected content: {exc}") from None
    console.out.write(text)
    return ExitCode.OK


def _read(build_dir: str, name: str) -> dict[str, Any]:
    try:
        with open(os.path.join(build_dir, name), encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise _not_a_build(build_dir, name, exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise _not_a_build(build_dir, name, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _not_a_build(build_dir, name, "not a JSON object")
    return data


def _not_a_build(build_dir: str, name: str, why: str) -> OperationError:
    return OperationError(f"{build_dir}: not a hercc build directory ({name}: {why})")
