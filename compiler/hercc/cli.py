"""The hercc command line. The only module that prints or exits."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from hercc import __version__, ir
from hercc.backends import BACKENDS, render_all
from hercc.cli_apply import add_apply_commands, run_apply
from hercc.cli_keys import add_keys_commands, run_keys
from hercc.cli_lab import add_lab_commands, run_lab
from hercc.cli_plan import add_diff_command, run_diff
from hercc.diagnostics import (
    HerccError,
    SpecError,
    UsageError,
    render_json,
    render_text,
)

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hercc", description="Compile Hercules overlay network specs.")
    p.add_argument("--version", action="version", version=f"hercc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def spec_cmd(name: str, help_text: str, error_format: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
        if error_format:
            c.add_argument(
                "--format",
                choices=("text", "json"),
                default="text",
                help="how to print errors (default: text)",
            )
        c.add_argument(
            "--frozen", action="store_true", help="fail instead of changing SPEC.lock (for CI)"
        )
        c.add_argument(
            "--keys",
            metavar="DIR",
            help="keys directory (hercc keys init): public keys for the "
            "configs; build also copies private keys into nodes/<node>/secrets/ (0600)",
        )
        return c

    c = spec_cmd("check", "Validate a spec; write nothing.")
    c.add_argument("--emit-ir", action="store_true", help="print the IR as JSON")
    c = spec_cmd("build", "Compile a spec into a build directory.")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="the build directory")
    c.add_argument(
        "--backend",
        action="append",
        choices=sorted(BACKENDS),
        metavar="NAME",
        help=f"render only this backend (repeatable; default all: {', '.join(BACKENDS)})",
    )
    f = sub.add_parser(
        "fmt",
        help="Print a .herc file in canonical layout, keeping comments.",
        description="Print a .herc file in canonical layout, keeping comments.",
    )
    f.add_argument("specs", nargs="+", metavar="SPEC")
    mode = f.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not canonical")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")
    r = spec_cmd("route", "Print the chosen overlay paths and their costs.")
    r.add_argument("--from", dest="src", metavar="NODE", help="path from this node")
    r.add_argument("--to", dest="dst", metavar="NODE", help="path to this node")
    r.add_argument("--network", metavar="NAME", help="only this network")
    r.add_argument("--json", action="store_true", help="print JSON for scripts")
    # graph's --format is the drawing's (svg or dot), as Graphviz users expect.
    g = spec_cmd(
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
    s = sub.add_parser(
        "summary", help="Summarise a build directory.", description="Summarise a build directory."
    )
    s.add_argument("build_dir", metavar="DIR")
    add_keys_commands(sub)
    add_lab_commands(sub)
    add_diff_command(sub)
    add_apply_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    sources: dict[str, str] = {}
    fmt_json = False
    try:
        args = _parser().parse_args(argv)
        fmt_json = getattr(args, "format", "text") == "json"
        return _dispatch(args, sources)
    except SpecError as err:
        if fmt_json:
            sys.stdout.write(render_json(err.diagnostics))
        else:
            sys.stderr.write(render_text(err.diagnostics, sources))
        return EXIT_INVALID
    except UsageError as err:
        _fail(str(err), "usage", fmt_json)
        return EXIT_USAGE
    except HerccError as err:
        _fail(str(err), "operation", fmt_json)
        return EXIT_INVALID
    except KeyboardInterrupt:
        sys.stderr.write("hercc: interrupted\n")
        return 130
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_OK
    except Exception as exc:
        where = _innermost_frame(exc)
        sys.stderr.write(
            f"hercc: internal error (a bug in hercc {__version__}; please report it): "
            f"{type(exc).__name__}: {exc} at {where}\n"
        )
        return EXIT_INTERNAL


def _fail(message: str, kind: str, fmt_json: bool) -> None:
    """Errors that are not about a place in the spec: one line, or JSON for pipelines."""
    if fmt_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message, "kind": kind}, indent=2) + "\n")
    else:
        sys.stderr.write(f"hercc: error: {message}\n")


def _innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


def _dispatch(args: argparse.Namespace, sources: dict[str, str]) -> int:
    command: str = args.command
    if command == "check":
        return _check(args, sources)
    if command == "build":
        return _build(args, sources)
    if command == "fmt":
        return _fmt(args, sources)
    if command == "graph":
        return _graph(args, sources)
    if command == "route":
        return _route(args, sources)
    if command == "lab":
        return run_lab(args, sources)
    if command == "keys":
        return run_keys(args, sources)
    if command in ("plan", "apply"):
        return run_apply(args, sources)
    if command == "diff":
        return run_diff(args, sources)
    if command == "summary":
        return _summary(args.build_dir, sys.stdout)
    raise UsageError(f"unknown command {command}")


def _compile(args: argparse.Namespace, sources: dict[str, str]) -> Any:
    from hercc.pipeline import compile_spec
    from hercc.schemas_check import validate_ir

    if not os.path.exists(args.spec):
        raise UsageError(f"{args.spec}: no such file")
    # Only outputs need per-node peers; check and route need paths alone.
    with_peers = args.command in ("build", "graph")
    compiled = compile_spec(
        args.spec, sources, frozen=args.frozen, keys_dir=args.keys, with_peers=with_peers
    )
    validate_ir(ir.to_data(compiled.ir))
    return compiled


def _check(args: argparse.Namespace, sources: dict[str, str]) -> int:
    compiled = _compile(args, sources)
    if args.emit_ir:
        sys.stdout.write(ir.to_json(compiled.ir))
    elif args.format == "json":
        sys.stdout.write(json.dumps({"ok": True, "errors": []}, indent=2) + "\n")
    else:
        model: ir.IR = compiled.ir
        sys.stderr.write(
            f"{args.spec}: ok ({len(model.networks)} networks, {len(model.nodes)} nodes, "
            f"{len(model.workloads)} workloads)\n"
        )
    return EXIT_OK


def _build(args: argparse.Namespace, sources: dict[str, str]) -> int:
    from hercc.lockfile import write_atomic
    from hercc.writer import with_manifest, write_tree

    compiled = _compile(args, sources)
    files = with_manifest(render_all(compiled.ir, args.backend))
    secrets = {}
    if args.keys is not None:
        from hercc.passes.keys import secret_files

        secrets = secret_files(compiled.ir, args.keys)
    write_tree(args.output, files, secrets)
    if compiled.lock_changed:
        write_atomic(compiled.lock_file, compiled.lock.to_json())
    if args.format == "json":
        sys.stdout.write(
            json.dumps({"ok": True, "output": args.output, "files": len(files)}) + "\n"
        )
    else:
        note = f"; updated {compiled.lock_file}" if compiled.lock_changed else ""
        sys.stderr.write(f"wrote {len(files)} files to {args.output}{note}\n")
    return EXIT_OK


def _graph(args: argparse.Namespace, sources: dict[str, str]) -> int:
    from hercc.graph_dot import render_dot, render_svg
    from hercc.lockfile import write_atomic

    drawing = args.drawing
    if drawing is None:
        suffix = os.path.splitext(args.output)[1]
        drawing = {".dot": "dot", ".gv": "dot", ".svg": "svg"}.get(suffix)
        if drawing is None:
            raise UsageError(f"{args.output}: name it .svg or .dot, or say --format svg|dot")
    dot_text = render_dot(_compile(args, sources).ir)
    write_atomic(args.output, dot_text if drawing == "dot" else render_svg(dot_text))
    sys.stderr.write(f"wrote {args.output}\n")
    return EXIT_OK


def _route(args: argparse.Namespace, sources: dict[str, str]) -> int:
    from hercc.route_report import render_routes, route_data

    entries = route_data(_compile(args, sources).routes, args.src, args.dst, args.network)
    if args.json:
        sys.stdout.write(ir.dumps(entries))
    else:
        sys.stdout.write(render_routes(entries))
    return EXIT_OK


def _fmt(args: argparse.Namespace, sources: dict[str, str]) -> int:
    from hercc.fmt import format_source
    from hercc.loader import is_yaml, read_text
    from hercc.lockfile import write_atomic
    from hercc.parser import parse_text

    formatted: dict[str, tuple[str, str]] = {}
    for path in args.specs:
        if is_yaml(path):
            raise UsageError(f"{path}: fmt formats .herc files; YAML specs keep their own layout")
        try:
            text = read_text(path)
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror}") from None
        sources[path] = text
        formatted[path] = (text, format_source(parse_text(text, path)))
    status = EXIT_OK
    for path, (text, canon) in formatted.items():
        if args.check:
            if text != canon:
                sys.stderr.write(f"{path}: not canonical (run `hercc fmt --write {path}`)\n")
                status = EXIT_INVALID
        elif args.write:
            if text != canon:
                write_atomic(path, canon)
                sys.stderr.write(f"formatted {path}\n")
        else:
            sys.stdout.write(canon)
    return status


def _summary(build_dir: str, out: TextIO) -> int:
    from hercc.build_dir import read_build
    from hercc.summary import render_summary

    out.write(render_summary(read_build(build_dir)))
    return EXIT_OK


def run() -> NoReturn:
    sys.exit(main())
