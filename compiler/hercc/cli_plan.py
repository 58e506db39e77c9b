"""`hercc diff OLD NEW`: what a change of spec would do to each node, as a plan.

cli.py registers the command with add_diff_command and dispatches `diff` to
run_diff. OLD and NEW are each a spec file (.herc, .herc.yaml; compiled with
its lock, which is read and never written) or a build directory (ir.json plus
nodes/*/node.json). The desired state of every node (plan/desired.py) under
OLD is the "live" side, under NEW the desired side, and the plan between them
is printed per node in the `hercc plan` notation.

Exit status, like Terraform's -detailed-exitcode: 0 no differences, 2
differences, 1 an error (invalid spec, missing file, unknown --node,
unreadable build directory: all raised as SpecError or OperationError). Only
a malformed command line (argparse, in cli.py) also exits 2; it prints nothing
on stdout.

Without --keys, private and preshared keys are null on both sides (and so
compare equal), and peers are named by their spec-pinned key or by node.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from hercc import ir
from hercc.build_dir import read_build
from hercc.diagnostics import OperationError
from hercc.plan.desired import DirKeys, KeyLookup, Naming, desired_state
from hercc.plan.diff import Plan, diff
from hercc.plan.model import State, state_of
from hercc.plan.render import plan_to_json, render_plan, summary_line

DIFF_HELP = "Show what changing from OLD to NEW would do on each node, as a plan."
EXIT_SAME, EXIT_DIFFERENT = 0, 2
JSON_FORMAT_VERSION = 1

_EPILOG = (
    "OLD and NEW are spec files or build directories. Exit status: 0 no differences, "
    "2 differences, 1 error."
)


def add_diff_command(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register `diff OLD NEW [--node N] [--json] [--keys DIR]`."""
    d: argparse.ArgumentParser = subparsers.add_parser(
        "diff", help=DIFF_HELP, description=DIFF_HELP, epilog=_EPILOG
    )
    d.add_argument("old", metavar="OLD", help="a spec file or a build directory")
    d.add_argument("new", metavar="NEW", help="a spec file or a build directory")
    d.add_argument("--node", metavar="NODE", help="only this node (printed even if unchanged)")
    d.add_argument("--json", action="store_true", help="print JSON for scripts")
    d.add_argument(
        "--keys",
        metavar="DIR",
        help="keys directory: public keys for specs, fingerprints of private and preshared keys",
    )
    return d


def load_ir(path: str, sources: dict[str, str], keys_dir: str | None) -> ir.IR:
    """The IR of a spec file (compiled) or of a build directory (read back)."""
    if os.path.isdir(path):
        return read_build(path).with_peers()
    if not os.path.isfile(path):
        raise OperationError(f"{path}: no such file or directory")
    from hercc.pipeline import compile_spec

    return compile_spec(path, sources, keys_dir=keys_dir).ir


def _state(model: ir.IR, node: str, naming: Naming, keys: KeyLookup | None) -> State:
    if node not in {n.name for n in model.nodes}:
        return {}
    return state_of(desired_state(model, node, naming, keys))


def diff_models(
    old: ir.IR,
    new: ir.IR,
    nodes: list[str] | None = None,
    naming: Naming | None = None,
    keys: KeyLookup | None = None,
) -> list[tuple[str, Plan]]:
    """(node, plan) for the given nodes (default: every node of either IR), sorted by name.

    A node only in OLD loses everything; a node only in NEW gains everything.
    """
    naming = naming if naming is not None else Naming()
    if nodes is None:
        nodes = sorted({n.name for n in old.nodes} | {n.name for n in new.nodes})
    return [
        (node, diff(_state(new, node, naming, keys), _state(old, node, naming, keys)))
        for node in nodes
    ]


def _totals(plans: list[tuple[str, Plan]]) -> tuple[int, int, int]:
    add = sum(p.add for _, p in plans)
    change = sum(p.change for _, p in plans)
    destroy = sum(p.destroy for _, p in plans)
    return add, change, destroy


def render_diff_text(plans: list[tuple[str, Plan]], show_unchanged: bool = False) -> str:
    parts = [
        f"# node {node}\n{render_plan(plan)}"
        for node, plan in plans
        if show_unchanged or not plan.no_changes
    ]
    changed = sum(not p.no_changes for _, p in plans)
    count = len(plans)
    noun = "node" if count == 1 else "nodes"
    if changed == 0:
        total = f"No differences on {count} {noun}."
    else:
        verb = "differs" if changed == 1 else "differ"
        total = f"{changed} of {count} {noun} {verb}. {summary_line(*_totals(plans))}"
    return "\n".join([*parts, total + "\n"])


def render_diff_json(plans: list[tuple[str, Plan]], show_unchanged: bool = False) -> str:
    add, change, destroy = _totals(plans)
    data = {
        "format_version": JSON_FORMAT_VERSION,
        "nodes": {
            node: plan_to_json(plan)
            for node, plan in plans
            if show_unchanged or not plan.no_changes
        },
        "summary": {
            "nodes": len(plans),
            "nodes_changed": sum(not p.no_changes for _, p in plans),
            "add": add,
            "change": change,
            "destroy": destroy,
        },
        "no_changes": all(p.no_changes for _, p in plans),
    }
    return ir.dumps(data)


def run_diff(args: argparse.Namespace, sources: dict[str, str], out: TextIO | None = None) -> int:
    """Run `hercc diff`; returns 0 (no differences) or 2 (differences). Errors raise."""
    out = sys.stdout if out is None else out
    old = load_ir(args.old, sources, args.keys)
    new = load_ir(args.new, sources, args.keys)
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
        out.write(render_diff_json(plans, show))
    else:
        out.write(render_diff_text(plans, show))
    return EXIT_SAME if all(p.no_changes for _, p in plans) else EXIT_DIFFERENT
