"""`hercc keys ...`: the command-line side of hercc.keys.

cli.py registers these sub-commands with add_keys_commands and dispatches
`keys` to run_keys. Like cli.py, this module prints; errors are raised as
HerccError subclasses for cli.main to turn into exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from hercc.diagnostics import UsageError

KEYS_HELP = "Manage the WireGuard keys of a spec's nodes."


def add_keys_commands(
    subparsers: argparse._SubParsersAction[Any],
) -> argparse.ArgumentParser:
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
    a = action("rotate", "Replace one node's key pair.")
    a.add_argument("node", metavar="NODE")
    action("show", "Print the public key of every node.")
    return k


def run_keys(
    args: argparse.Namespace,
    sources: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run a `keys` action; returns the exit code. Summaries go to err, data to out."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    action: str = args.keys_command
    if action == "init":
        return _init(args.spec, args.keys, sources, err)
    if action == "rotate":
        return _rotate(args.node, args.keys, err)
    if action == "show":
        return _show(args.keys, out)
    raise UsageError(f"unknown keys action {action}")


def _init(spec: str, keys_dir: str, sources: dict[str, str] | None, err: TextIO) -> int:
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
    return 0


def _rotate(node: str, keys_dir: str, err: TextIO) -> int:
    from hercc.keys import rotate_key

    report = rotate_key(node, keys_dir)
    err.write(
        f"rotated the key of {report.node} ({report.private_file}); "
        f"rebuild and redeploy its peers\n"
    )
    return 0


def _show(keys_dir: str, out: TextIO) -> int:
    from hercc.keys import load_public_keys

    keys = load_public_keys(keys_dir)
    width = max((len(n) for n in keys), default=0)
    for node in sorted(keys):
        out.write(f"{node.ljust(width)}  {keys[node]}\n")
    return 0
