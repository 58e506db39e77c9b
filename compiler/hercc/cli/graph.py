"""`hercc graph SPEC -o FILE`: draw the network as SVG or Graphviz dot."""

from __future__ import annotations

import argparse
import os
from typing import Any

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.spec import add_spec_command, compile_args
from hercc.diagnostics import UsageError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    # graph's --format is the drawing's (svg or dot), as Graphviz users expect.
    g = add_spec_command(
        subparsers,
        "graph",
        "Draw the network: nodes, relays, chosen paths, gateways, services.",
        error_format=False,
    )
    g.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it")
    g.add_argument(
        "--format",
        dest="drawing",
        choices=("svg", "dot"),
        default=None,
        help="svg or dot (default: from the file name)",
    )
    g.set_defaults(run=run)


# The drawing a file name asks for. Nothing else: a .png or .pdf would need a Graphviz
# built with cairo, and converting the DOT is one `dot` command away.
SUFFIXES = {".svg": "svg", ".dot": "dot", ".gv": "dot"}


def _drawing_of(output: str) -> str:
    stem, suffix = os.path.splitext(output)
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    message = f"{output}: graph draws svg or dot"
    if suffix:
        kind = suffix[1:].lower()
        message += f", not {kind}"
    message += "; name it .svg, .dot or .gv, or say --format svg|dot"
    if suffix:
        message += f" (for {kind}: `dot -T{kind} {stem}.dot -o {output}`)"
    raise UsageError(message)


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.graph_dot import render_dot, render_svg
    from hercc.sysio.files import write_atomic

    drawing = args.drawing if args.drawing is not None else _drawing_of(args.output)
    dot_text = render_dot(compile_args(args, console, peers_for=None).ir)
    write_atomic(args.output, dot_text if drawing == "dot" else render_svg(dot_text))
    console.err.write(f"wrote {args.output}\n")
    return ExitCode.OK
