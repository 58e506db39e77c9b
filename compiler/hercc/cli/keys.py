"""`hercc keys init|rotate|show`: the command-line side of hercc.keys."""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.diagnostics import UsageError

KEYS_HELP = "Manage the WireGuard keys of a spec's nodes."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `keys init|rotate|show` on the top-level sub-command set."""
    k: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help=KEYS_HELP, description=KEYS_HELP
    )
    actions = k.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", parser_class=type(k)
    )

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--keys", required=True, metavar="DIR", help="the keys directory")
        return a

    a = action("init", "Create a key pair for every node that has none; keep existing keys.")
    a.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    a = action("rotate", "Replace one node's (or gateway's) key pair.")
    a.add_argument(
        "node",
        metavar="NAME",
        help='a node, or a gateway as "gateway:NAME" (as `keys show` lists it)',
    )
    action("show", "Print the public key of every node.")
    k.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run a `keys` action. Summaries go to err, data to out."""
    action: str = args.keys_command
    if action == "init":
        return _init(args.spec, args.keys, console.sources, console.err)
    if action == "rotate":
        return _rotate(args.node, args.keys, console.err)
    if action == "show":
        return _show(args.keys, console.out)
    raise UsageError(f"unknown keys action {action}")


def _init(spec: str, keys_dir: str, sources: dict[str, str], err: TextIO) -> int:
    from hercc.keys import init_keys
    from hercc.pipeline import compile_spec

    if not os.path.exists(spec):
        raise UsageError(f"{spec}: no such file")
    # Reads SPEC.lock if there is one, but never writes it: keys do not depend on
    # addresses, and `hercc build` owns the lock.
    compiled = compile_spec(spec, sources)
    report = init_keys(compiled.ir, keys_dir)
    err.write(
        f"created {len(report.created)} key{'s' if len(report.created) != 1 else ''}, "
        f"kept {len(report.kept)}, pinned {len(report.pinned)} in {keys_dir}\n"
    )
    if report.stale:
        err.write(
            f"note: {len(report.stale)} node{'s' if len(report.stale) != 1 else ''} "
            f"not in the spec kept their keys: {', '.join(report.stale)}\n"
        )
    return ExitCode.OK


def _rotate(node: str, keys_dir: str, err: TextIO) -> int:
    from hercc.keys import rotate_key

    report = rotate_key(node, keys_dir)
    err.write(
        f"rotated the key of {report.node} ({report.private_file}); "
        f"rebuild and redeploy its peers\n"
    )
    return ExitCode.OK


def _show(keys_dir: str, out: TextIO) -> int:
    from hercc.keys import load_public_keys

    keys = load_public_keys(keys_dir)
    width = max((len(n) for n in keys), default=0)
    for node in sorted(keys):
        out.write(f"{node.ljust(width)}  {keys[node]}\n")
    return ExitCode.OK
