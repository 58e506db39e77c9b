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


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.graph_dot import render_dot, render_svg
    from hercc.sysio.files import write_atomic

    drawing = args.drawing
    if drawing is None:
        suffix = os.path.splitext(args.output)[1]
        drawing = {".dot": "dot", ".gv": "dot", ".svg": "svg"}.get(suffix)
        if drawing is None:
            raise UsageError(f"{args.output}: name it .svg or .dot, or say --format svg|dot")
    dot_text = render_dot(compile_args(args, console, with_peers=True).ir)
    write_atomic(args.output, dot_text if drawing == "dot" else render_svg(dot_text))
    console.err.write(f"wrote {args.output}\n")
    return ExitCode.OK
