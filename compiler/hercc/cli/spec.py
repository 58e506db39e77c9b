"""The arguments of the commands that compile a spec, and that compile."""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from hercc import ir
from hercc.cli.console import Console
from hercc.diagnostics import UsageError, render_warnings

if TYPE_CHECKING:  # imported when a command compiles: `--help` and `fmt` need no compiler
    from hercc.pipeline import Compiled


def add_spec_command(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    help_text: str,
    error_format: bool = True,
) -> argparse.ArgumentParser:
    """Register `name SPEC [--format text|json] [--frozen] [--keys DIR]`."""
    c: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text, description=help_text)
    c.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    if error_format:
        c.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="how to print errors (default: text)",
        )
    c.add_argument(
        "--frozen", action="store_true", help="fail instead of changing SPEC.lock (for CI)"
    )
    c.add_argument(
        "--keys",
        metavar="DIR",
        help="keys directory (hercc keys init): public keys for the "
        "configs; build also copies private keys into nodes/<node>/secrets/ (0600)",
    )
    return c


def compile_args(
    args: argparse.Namespace, console: Console, peers_for: Collection[str] | None
) -> Compiled:
    """SPEC compiled as the flags say, its IR checked against the schema.

    `peers_for`: the nodes whose peers to compute (None: every node). Only
    outputs need per-node peers; check and route need paths alone.
    """
    compiled = compile_unchecked(args, console, peers_for)
    checked_ir_data(compiled.ir)
    return compiled


def compile_unchecked(
    args: argparse.Namespace, console: Console, peers_for: Collection[str] | None
) -> Compiled:
    """compile_args but the schema check, which a build runs while it writes."""
    from hercc.pipeline import compile_spec

    if not os.path.exists(args.spec):
        raise UsageError(f"{args.spec}: no such file")
    compiled = compile_spec(
        args.spec, console.sources, frozen=args.frozen, keys_dir=args.keys, peers_for=peers_for
    )
    console.err.write(render_warnings(compiled.warnings, console.sources))
    return compiled


def checked_ir_data(model: ir.IR) -> dict[str, Any]:
    """ir.json's data, checked against schemas/ir.schema.json."""
    from hercc.schemas_check import validate_ir

    data = ir.to_data(model)
    validate_ir(data)
    return data


def checked_ir_json(model: ir.IR) -> str:
    """ir.json's text, its data checked first (a build writes it)."""
    return ir.dumps(checked_ir_data(model))
