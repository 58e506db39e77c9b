"""`hercc build SPEC -o DIR`: compile a spec into a build directory."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hercc.backends import BACKENDS, render_all
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.spec import add_spec_command, compile_args


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    c = add_spec_command(subparsers, "build", "Compile a spec into a build directory.")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="the build directory")
    c.add_argument(
        "--backend",
        action="append",
        choices=sorted(BACKENDS),
        metavar="NAME",
        help=f"render only this backend (repeatable; default all: {', '.join(BACKENDS)})",
    )
    c.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from hercc.sysio.files import write_atomic
    from hercc.writer import with_manifest, write_tree

    compiled = compile_args(args, console, with_peers=True)
    files = with_manifest(render_all(compiled.ir, args.backend))
    secrets = {}
    if args.keys is not None:
        from hercc.passes.keys import secret_files

        secrets = secret_files(compiled.ir, args.keys)
    write_tree(args.output, files, secrets)
    if compiled.lock_changed:
        write_atomic(compiled.lock_file, compiled.lock.to_json())
    if args.format == "json":
        console.out.write(
            json.dumps({"ok": True, "output": args.output, "files": len(files)}) + "\n"
        )
    else:
        note = f"; updated {compiled.lock_file}" if compiled.lock_changed else ""
        console.err.write(f"wrote {len(files)} files to {args.output}{note}\n")
    return ExitCode.OK
