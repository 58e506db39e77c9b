"""`hercc dataplane status --node N`: the programs a node runs, where, their maps and counters.

Read from the node's pins on the bpffs in the namespaces it owns (its
registry under --state-dir) and the attachments there
(hercc.state.dataplane_status); `--format json` for scripts.
"""

from __future__ import annotations

import argparse
from typing import Any

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.resources.model import STATE_DIR

DATAPLANE_HELP = "Show a node's eBPF dataplane: programs, attachments, maps and counters."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("dataplane", help=DATAPLANE_HELP, description=DATAPLANE_HELP)
    sub = p.add_subparsers(dest="dataplane_command", required=True, metavar="COMMAND")
    s = sub.add_parser("status", help=DATAPLANE_HELP, description=DATAPLANE_HELP)
    s.add_argument("--node", required=True)
    s.add_argument("--state-dir", default=STATE_DIR, help=f"default {STATE_DIR}")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(run=run_status)


def run_status(args: argparse.Namespace, console: Console) -> int:
    from hercc.cli.views.dataplane import render_status, render_status_json
    from hercc.state.dataplane_status import node_status
    from hercc.state.registry import OwnedRegistry

    objects = node_status(args.node, OwnedRegistry(args.node, args.state_dir).load())
    render = render_status_json if args.format == "json" else render_status
    console.out.write(render(args.node, objects))
    return ExitCode.OK
