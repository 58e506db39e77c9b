"""`hercc build SPEC -o DIR`: compile a spec into a build directory (every node, or some)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from hercc import ir
from hercc.backends import BACKEND_NAMES, global_files, node_parts
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.spec import add_spec_command, checked_ir_json, compile_unchecked
from hercc.diagnostics import UsageError

# An unknown --node lists the nodes there are, up to this many: a spec may have 10,000.
_LISTED_NODES = 20


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    c = add_spec_command(subparsers, "build", "Compile a spec into a build directory.")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="the build directory")
    c.add_argument(
        "--backend",
        action="append",
        choices=sorted(BACKEND_NAMES),
        metavar="NAME",
        help=f"render only this backend (repeatable; default all: {', '.join(BACKEND_NAMES)})",
    )
    c.add_argument(
        "--node",
        action="append",
        metavar="NODE",
        help="write only this node's files, with ir.json and the manifest (repeatable; "
        "default every node, and the gateways' and zones' files)",
    )
    c.add_argument(
        "--secrets",
        metavar="FILE",
        help='the values of secret("name") (mode 0600; name: value lines, or YAML); a '
        "name it lacks is read from HERC_SECRET_<NAME>. Only with it does the build "
        "write nodes/<node>/secrets/ipsec.secrets.conf",
    )
    c.set_defaults(run=run)


def _selected_nodes(model: ir.IR, names: Sequence[str] | None) -> frozenset[str] | None:
    """The nodes --node names (None: every node); a name the spec lacks is a usage error."""
    if names is None:
        return None
    known = sorted(node.name for node in model.nodes)
    unknown = sorted(set(names) - set(known))
    if unknown:
        listed = ", ".join(known[:_LISTED_NODES])
        if len(known) > _LISTED_NODES:
            listed += f", ... ({len(known) - _LISTED_NODES} more)"
        raise UsageError(f"no node {', '.join(unknown)} in the spec (nodes: {listed or 'none'})")
    return frozenset(names)


def _node_of(path: str) -> str | None:
    kind, owner = path.split("/")[:2]
    return owner if kind == "nodes" else None


def _ipsec_secrets(model: ir.IR, path: str, nodes: frozenset[str] | None) -> dict[str, str]:
    """nodes/<node>/secrets/ipsec.secrets.conf of the nodes written, their keys resolved."""
    import os

    from hercc.backends import swanctl
    from hercc.passes.secrets import resolve

    chosen = [n for n in model.nodes if nodes is None or n.name in nodes]
    names = [s for n in chosen for s in swanctl.secret_names(model, n.name)]
    values = resolve(names, path, os.environ)
    return {p: t for n in chosen for p, t in swanctl.render_secrets(model, n, values).items()}


def run(args: argparse.Namespace, console: Console) -> int:
    """Write the build directory and SPEC.lock together, or neither.

    The lock goes to the writer as the directory's companion: it is written
    next to SPEC.lock before the directory is swapped in, and renamed over it
    right after, the swap undone if that fails (writer.py). A failing build
    changes neither, so the lock never records what the output does not hold.
    """
    from hercc.writer import write_tree

    compiled = compile_unchecked(args, console, peers_for=args.node)
    nodes = _selected_nodes(compiled.ir, args.node)
    secrets = {}
    if args.keys is not None:
        from hercc.passes.keys import secret_files

        secrets = secret_files(compiled.ir, args.keys)
        if nodes is not None:  # nodes/<node>/secrets/...; no gateways/<gateway>/secrets/...
            secrets = {p: t for p, t in secrets.items() if _node_of(p) in nodes}
    if args.secrets is not None:
        secrets |= _ipsec_secrets(compiled.ir, args.secrets, nodes)
    lock = (compiled.lock_file, compiled.lock.to_json()) if compiled.lock_changed else None
    model = compiled.ir
    # The nodes' parts go to worker processes in a big build; meanwhile this one
    # checks ir.json against the schema (a second at 10,000 nodes) and writes it.
    parts = node_parts(model, args.backend, nodes)
    files = global_files(model, args.backend, nodes, lambda: checked_ir_json(model))
    count = write_tree(args.output, files, secrets, lock, parts)
    if args.format == "json":
        console.out.write(json.dumps({"ok": True, "output": args.output, "files": count}) + "\n")
    else:
        note = f"; updated {compiled.lock_file}" if compiled.lock_changed else ""
        console.err.write(f"wrote {count} files to {args.output}{note}\n")
    return ExitCode.OK
