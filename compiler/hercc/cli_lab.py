"""`hercc lab ...`: live labs that outlive the command (hercc.lab.persistent).

`lab up` builds the underlay with the lab harness and every node's overlay
with the code of `hercc plan|apply` (hercc.lab.nodes); `lab plan|apply SPEC`
plan and apply every node of a running lab with that same code
(hercc.lab.overlay).

cli.py registers the sub-commands with add_lab_commands and dispatches `lab`
to run_lab. Like cli.py, this module prints; errors are raised as HerccError
subclasses (OperationError: exit 1, UsageError: exit 2) for cli.main to turn
into exit codes. `main` runs `lab` alone, with the same exit codes (tests,
and `python -m hercc.cli_lab lab ...`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from hercc.diagnostics import (
    HerccError,
    OperationError,
    SpecError,
    UsageError,
    did_you_mean,
    render_text,
)

LAB_HELP = "Run a spec live on this machine: namespaces, NAT routers, wireguard-go."
NAME_HELP = "the lab's name (default: lab)"
# the tools each action runs (every action needs root)
_NEEDS = {
    "up": ("ip", "nft", "wg", "wireguard-go", "ping", "ss", "sysctl"),
    "check": ("ip", "ping"),
    "status": ("ip", "wg"),
    "exec": ("ip",),
    "down": ("ip",),
    "plan": ("ip", "wg"),
    "apply": ("ip", "wg", "wireguard-go", "sysctl"),
}
EXIT_CHANGES = 2


def add_lab_commands(
    subparsers: argparse._SubParsersAction[Any],
) -> argparse.ArgumentParser:
    """Register `lab up|check|status|exec|down` on the top-level sub-command set."""
    lab: argparse.ArgumentParser = subparsers.add_parser("lab", help=LAB_HELP, description=LAB_HELP)
    actions = lab.add_subparsers(
        dest="lab_command", required=True, metavar="ACTION", parser_class=type(lab)
    )

    def action(name: str, help_text: str, name_default: str | None = "lab") -> Any:
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--name", default=name_default, metavar="LAB", help=NAME_HELP)
        return a

    a = action(
        "up",
        "Compile SPEC and bring it up as a lab that keeps running after this command "
        "exits (the underlay by the lab, every node's overlay by `hercc apply`'s code); "
        "refused if the lab exists.",
    )
    a.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    a = action(
        "check",
        "Ping every overlay address (IPv4 and IPv6) of every member and workload from "
        "every member and workload of the same network; exit 1 if any fails.",
    )
    a.add_argument("--json", action="store_true", help="print JSON for scripts")
    action(
        "status",
        "Show labs, their namespaces, wireguard-go processes and handshake ages "
        "(all labs without --name).",
        name_default=None,
    )
    a = action(
        "exec",
        "Run a command in a lab namespace: NODE (its underlay), NODE@NETWORK, "
        "WORKLOAD, router:NODE or underlay.",
    )
    a.add_argument("target", metavar="TARGET")
    a.add_argument("argv", nargs="+", metavar="CMD", help="the command, after --")
    action("down", "Remove everything the lab created; a lab that does not exist is fine.")
    a = action(
        "plan",
        "Show what applying SPEC to the running lab would change, node by node, read "
        "from the lab's namespaces as `hercc plan` reads a node.",
    )
    a.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    a.add_argument("--json", action="store_true", help="print the plans as JSON")
    a.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are",
    )
    a = action(
        "apply",
        "Change every node of the running lab to match SPEC with `hercc apply`'s executor "
        "(the lab's underlay is fixed: nodes cannot be added or removed).",
    )
    a.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    return lab


def run_lab(
    args: argparse.Namespace,
    sources: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run a `lab` action; returns the exit code. Data to out, progress and notes to err."""
    from hercc.diagnostics import LabError
    from hercc.lab.harness import missing_requirements

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    action: str = args.lab_command
    if action not in _NEEDS:
        raise UsageError(f"unknown lab action {action}")
    why = missing_requirements(_NEEDS[action])
    if why is not None:
        raise OperationError(f"hercc lab {action}: {why}")
    try:
        if action == "up":
            return _up(args.spec, args.name, sources, err)
        if action == "check":
            return _check(args.name, args.json, out, err)
        if action == "status":
            return _status(args.name, out)
        if action == "exec":
            return _exec(args.name, args.target, args.argv)
        if action == "plan":
            return _plan(args.name, args.spec, args.json, args.detailed_exitcode, sources, out)
        if action == "apply":
            return _apply(args.name, args.spec, sources, out, err)
        return _down(args.name, err)
    except LabError as exc:
        raise OperationError(str(exc)) from None


def _up(spec: str, name: str, sources: dict[str, str] | None, err: TextIO) -> int:
    import os

    from hercc.lab import persistent

    if not os.path.exists(spec):
        raise UsageError(f"{spec}: no such file")
    _name(name)
    state = persistent.up_lab(spec, name, sources=sources)
    took = state.timings.get("up", 0.0)
    err.write(
        f"lab {name!r} is up in {took:.1f} s: {len(state.namespaces)} namespaces, "
        f"{len(state.interfaces)} wireguard-go (prefix {state.prefix}); "
        f"`hercc lab check --name {name}`, `hercc lab down --name {name}`\n"
    )
    return 0


def _name(name: str) -> str:
    from hercc.diagnostics import LabError
    from hercc.lab import persistent

    try:
        return persistent.check_name(name)
    except LabError as exc:
        raise UsageError(str(exc)) from None


def _load(name: str) -> Any:
    from hercc.lab import persistent

    try:
        return persistent.load_state(_name(name))
    except persistent.NoSuchLab:
        known = persistent.list_labs()
        hint = did_you_mean(name, known)
        have = f" (labs: {', '.join(known)})" if known else " (no labs are up)"
        raise OperationError(f"no lab named {name!r}" + (f"; {hint}" if hint else have)) from None


def _check(name: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    from hercc.lab import persistent

    state = _load(name)
    results = persistent.check_lab(state)
    ok = all(r.ok for r in results)
    if as_json:
        data = {
            "ok": ok,
            "lab": name,
            "results": [
                {
                    "from": r.src,
                    "to": r.dst,
                    "address": r.address,
                    "family": f"ipv{r.family}",
                    "network": r.network,
                    "ok": r.ok,
                }
                for r in results
            ],
        }
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        out.write(render_matrix(state, results))
    return 0 if ok else 1


def render_matrix(state: Any, results: Sequence[Any]) -> str:
    """Rows ping columns. ok: every address answers; --: none; -4/-6: that family fails."""
    ordered = sorted(state.endpoints, key=lambda e: (e.network, e.kind != "node"))
    names = [e.name for e in ordered]  # by network, nodes first
    net_of = {e.name: e.network for e in state.endpoints}
    cells: dict[tuple[str, str], list[Any]] = {}
    for r in results:
        cells.setdefault((r.src, r.dst), []).append(r)
    width = max((len(n) for n in names), default=4) + 5
    col = max(3, len(str(len(names))) + 1)
    lines = [
        f"lab {state.name!r}: the row pings every overlay address of the column",
        " " * width + "".join(str(i + 1).rjust(col) for i in range(len(names))),
    ]
    for i, src in enumerate(names):
        row = f"{i + 1:>3} {src}".ljust(width)
        for dst in names:
            if net_of[src] != net_of[dst]:
                mark = "·"
            else:
                rs = cells.get((src, dst), [])
                failed = {r.family for r in rs if not r.ok}
                if not failed:
                    mark = "ok"
                elif len(failed) == len({r.family for r in rs}):
                    mark = "--"
                else:
                    mark = "".join(f"-{f}" for f in sorted(failed))
            row += mark.rjust(col)
        lines.append(row.rstrip())
    lines.append(
        "ok: every address answers; --: none does; -4/-6: IPv4/IPv6 fails; ·: other network"
    )
    bad = [r for r in results if not r.ok]
    for r in bad:
        lines.append(f"FAIL {r.src} -> {r.dst} {r.address} (IPv{r.family}, {r.network})")
    v4 = sum(1 for r in results if r.family == 4)
    lines.append(
        f"{len(results) - len(bad)}/{len(results)} pings answered "
        f"({v4} IPv4, {len(results) - v4} IPv6)"
    )
    return "\n".join(lines) + "\n"


def _status(name: str | None, out: TextIO) -> int:
    import time

    from hercc.lab import persistent

    names = [_name(name)] if name is not None else persistent.list_labs()
    if name is not None:
        _load(name)
    if not names:
        out.write("no labs\n")
        return 0
    healthy = True
    for lab_name in names:
        st = persistent.lab_status(persistent.load_state(lab_name))
        s = st.state
        healthy = healthy and st.healthy
        out.write(
            f"lab {s.name!r}: {s.status}{'' if st.healthy else ', degraded'}; "
            f"spec {s.spec}; since {s.created}; prefix {s.prefix}\n"
            f"  namespaces: {len(st.namespaces_present)}/{len(s.namespaces)} present"
        )
        gone = sorted(set(s.namespaces) - set(st.namespaces_present))
        out.write(f" (gone: {', '.join(gone)})\n" if gone else "\n")
        for i in st.interfaces:
            f = i.iface
            pid = f"pid {f.pid} {'alive' if i.alive else 'DEAD'}" if f.pid else "no pid"
            if i.peers is None:
                hs = "interface unreadable"
            else:
                age = "never" if i.latest_age is None else f"{i.latest_age:.0f} s ago"
                hs = f"{i.handshaken}/{i.peers} peers handshaken, latest {age}"
            out.write(f"  {f.name:<15} {f.node}@{f.network}: {pid}; {hs}\n")
    out.write(f"({time.strftime('%H:%M:%S')})\n")
    return 0 if healthy else 1


def _exec(name: str, target: str, argv: Sequence[str]) -> int:
    from hercc.lab import persistent

    state = _load(name)
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("hercc lab exec: no command (say TARGET -- CMD ...)")
    try:
        return persistent.exec_in(state, target, argv)
    except persistent.NoSuchTarget as exc:
        choices = [c for c in exc.choices if ":" not in c]
        hint = did_you_mean(target, choices)
        raise UsageError(
            f"{exc}; " + (hint if hint else f"choose from {', '.join(sorted(choices))}")
        ) from None


def _plan_lab(name: str, spec: str, sources: dict[str, str] | None) -> Any:
    import os

    from hercc.lab import overlay

    if not os.path.isfile(spec):
        raise UsageError(f"{spec}: no such file")
    return overlay.plan_lab(_load(name), spec, sources)


def render_lab_plan(planned: Any) -> str:
    """`# node X` and its plan (plan/render.py) per node, then the lab's total."""
    from hercc.plan.render import render_plan

    parts = [f"# node {n.node}\n" + render_plan(n.plan) for n in planned.nodes]
    name = planned.state.name
    if planned.no_changes:
        total = f"No changes. Every node of lab {name!r} matches the spec."
    else:
        add, change, destroy = planned.counts()
        changed = sum(not n.plan.no_changes for n in planned.nodes)
        total = (
            f"Lab {name!r}: {add} to add, {change} to change, {destroy} to destroy "
            f"on {changed} of {len(planned.nodes)} nodes."
        )
    return "\n".join(parts) + "\n" + total + "\n"


def lab_plan_json(planned: Any) -> dict[str, Any]:
    from hercc.plan.render import plan_to_json

    add, change, destroy = planned.counts()
    return {
        "lab": planned.state.name,
        "spec": planned.spec,
        "nodes": {n.node: plan_to_json(n.plan) for n in planned.nodes},
        "summary": {"add": add, "change": change, "destroy": destroy},
        "no_changes": planned.no_changes,
    }


def _plan(
    name: str,
    spec: str,
    as_json: bool,
    detailed: bool,
    sources: dict[str, str] | None,
    out: TextIO,
) -> int:
    planned = _plan_lab(name, spec, sources)
    if as_json:
        out.write(json.dumps(lab_plan_json(planned), indent=2, sort_keys=True) + "\n")
    else:
        out.write(render_lab_plan(planned))
    return EXIT_CHANGES if detailed and not planned.no_changes else 0


def _apply(name: str, spec: str, sources: dict[str, str] | None, out: TextIO, err: TextIO) -> int:
    from hercc.lab import overlay

    planned = _plan_lab(name, spec, sources)
    out.write(render_lab_plan(planned))
    if planned.no_changes:
        return 0

    def progress(node: str, step: Any) -> None:
        err.write(f"  {node}: {step.action.symbol} {step.address}\n")

    done = overlay.apply_lab(planned, progress)
    add, change, destroy = planned.counts()
    err.write(
        f"Apply complete: {add} added, {change} changed, {destroy} destroyed "
        f"on {len(done)} node{'s' if len(done) != 1 else ''} ({', '.join(done)}).\n"
    )
    return 0


def _down(name: str, err: TextIO) -> int:
    from hercc.lab import persistent

    state = persistent.down_lab(_name(name))
    if state is None:
        err.write(f"no lab named {name!r}: nothing to do\n")
    else:
        err.write(
            f"lab {name!r} is down: removed {len(state.namespaces)} namespaces, "
            f"{len(state.interfaces)} wireguard-go\n"
        )
    return 0


# ---------------------------------------------------------------- standalone


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    """A parser with `lab` only, as cli.py's would have it (until cli.py registers it)."""
    p = _Parser(prog="hercc")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    add_lab_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`hercc lab ...` on its own, with cli.main's exit codes (0, 1, 2; 130 on ^C)."""
    sources: dict[str, str] = {}
    try:
        args = parser().parse_args(argv)
        return run_lab(args, sources)
    except SpecError as exc:
        sys.stderr.write(render_text(exc.diagnostics, sources))
        return 1
    except UsageError as exc:
        sys.stderr.write(f"hercc: error: {exc}\n")
        return 2
    except HerccError as exc:
        sys.stderr.write(f"hercc: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("hercc: interrupted\n")
        return 130
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
