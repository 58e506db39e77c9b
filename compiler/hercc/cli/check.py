"""`hercc check SPEC`: validate a spec; write nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hercc import ir
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.spec import add_spec_command, compile_args


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    c = add_spec_command(subparsers, "check", "Validate a spec; write nothing.")
    c.add_argument("--emit-ir", action="store_true", help="print the IR as JSON")
    c.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    compiled = compile_args(args, console, peers_for=())
    if args.emit_ir:
        console.out.write(ir.to_json(compiled.ir))
    elif args.format == "json":
        console.out.write(json.dumps({"ok": True, "errors": []}, indent=2) + "\n")
    else:
        model: ir.IR = compiled.ir
        console.err.write(
            f"{args.spec}: ok ({len(model.networks)} networks, {len(model.nodes)} nodes, "
            f"{len(model.workloads)} workloads)\n"
        )
    return ExitCode.OK
