"""`hercc route SPEC`: print the chosen overlay paths and their costs."""

from __future__ import annotations

import argparse
from typing import Any

from hercc import ir
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.spec import add_spec_command, compile_args


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    r = add_spec_command(subparsers, "route", "Print the chosen overlay paths and their costs.")
    r.add_argument("--from", dest="src", metavar="NODE", help="path from this node")
    r.add_argument("--to", dest="dst", metavar="NODE", help="path to this node")
    r.add_argument("--network", metavar="NAME", help="only this network")
    r.add_argument("--json", action="store_true", help="print JSON for scripts")
    r.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.route_report import render_routes, route_data

    routes = compile_args(args, console, peers_for=()).routes
    entries = route_data(routes, args.src, args.dst, args.network)
    if args.json:
        console.out.write(ir.dumps(entries))
    else:
        console.out.write(render_routes(entries))
    return ExitCode.OK
