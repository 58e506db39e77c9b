"""`hercc diff OLD NEW`: what a change of spec would do to each node, as a plan.

OLD and NEW are each a spec file (.herc, .herc.yaml; compiled with its lock,
which is read and never written), a build directory (ir.json plus
nodes/*/node.json) or /dev/null, an empty network (as in Unix `diff /dev/null
FILE`: `hercc diff /dev/null SPEC` shows every node being created). The plans
are plan/spec_diff.py's, printed per node in the `hercc plan` notation
(cli/views/diff.py).

Exit status, like Terraform's -detailed-exitcode: 0 no differences, 2
differences, 1 an error (invalid spec, missing file, unknown --node,
unreadable build directory: all raised as SpecError or OperationError). Only
a malformed command line (argparse, in cli/main.py) also exits 2; it prints
nothing on stdout.

Without --keys, private keys are null on both sides (and so compare equal),
a wanted preshared key is "(unknown)" (so `psk on` against `psk off` shows as
`(sensitive, added)`), and peers are named by their spec-pinned key or by node.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from hercc import ir
from hercc.build_dir import read_build
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.views.diff import render_diff_json, render_diff_text
from hercc.diagnostics import OperationError
from hercc.plan.desired import DirKeys, KeyLookup
from hercc.plan.spec_diff import diff_models
from hercc.resources.naming import Naming

DIFF_HELP = "Show what changing from OLD to NEW would do on each node, as a plan."

_EPILOG = (
    "OLD and NEW are spec files, build directories or /dev/null (an empty network). "
    "Exit status: 0 no differences, 2 differences, 1 error."
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `diff OLD NEW [--node N] [--json] [--keys DIR]`."""
    d: argparse.ArgumentParser = subparsers.add_parser(
        "diff", help=DIFF_HELP, description=DIFF_HELP, epilog=_EPILOG
    )
    d.add_argument("old", metavar="OLD", help="a spec file, a build directory or /dev/null")
    d.add_argument("new", metavar="NEW", help="a spec file, a build directory or /dev/null")
    d.add_argument("--node", metavar="NODE", help="only this node (printed even if unchanged)")
    d.add_argument("--json", action="store_true", help="print JSON for scripts")
    d.add_argument(
        "--keys",
        metavar="DIR",
        help="keys directory: public keys for specs, fingerprints of private and preshared keys",
    )
    d.set_defaults(run=run)


# What /dev/null stands for: the IR of an empty spec (a test keeps the two equal).
EMPTY = ir.IR(
    networks=(),
    nodes=(),
    workloads=(),
    underlay=ir.Underlay(public_public_cost=10, nat_public_cost=10, links=()),
    gateways=(),
    services=(),
    dns=(),
    enterprise=(),
    fastpath="off",
    netflow=None,
)


def load_ir(path: str, sources: dict[str, str], keys_dir: str | None) -> ir.IR:
    """The IR of a spec file (compiled), of a build directory (read back), or of nothing
    (/dev/null, as in `diff /dev/null FILE`: every node is new, or every node is gone)."""
    if os.path.abspath(path) == os.devnull:
        return EMPTY
    if not os.path.exists(path):
        raise OperationError(f"{path}: no such file or directory")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "ir.json")):
        return read_build(path).with_peers()
    if not os.path.isfile(path):
        raise OperationError(f"{path}: not a spec file or a build directory")
    from hercc.pipeline import compile_spec

    return compile_spec(path, sources, keys_dir=keys_dir).ir


def run(args: argparse.Namespace, console: Console) -> int:
    """0 (no differences) or 2 (differences). Errors raise."""
    old = load_ir(args.old, console.sources, args.keys)
    new = load_ir(args.new, console.sources, args.keys)
    keys: KeyLookup | None = DirKeys(args.keys) if args.keys is not None else None
    nodes = None
    if args.node is not None:
        known = {n.name for n in old.nodes} | {n.name for n in new.nodes}
        if args.node not in known:
            raise OperationError(f"node {args.node} is in neither {args.old} nor {args.new}")
        nodes = [args.node]
    plans = diff_models(old, new, nodes, Naming(), keys)
    show = args.node is not None
    if args.json:
        console.out.write(render_diff_json(plans, show))
    else:
        console.out.write(render_diff_text(plans, show))
    return ExitCode.OK if all(p.no_changes for _, p in plans) else ExitCode.CHANGES
