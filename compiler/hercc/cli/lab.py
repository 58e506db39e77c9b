"""`hercc lab ...`: live labs that outlive the command (hercc.lab.persistent).

`lab up` builds the underlay with the lab harness and every node's overlay
with the code of `hercc plan|apply` (hercc.lab.nodes); `lab plan|apply SPEC`
plan and apply every node of a running lab with that same code
(hercc.lab.overlay).

What they print is rendered by cli/views/lab.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.views.lab import (
    check_json,
    lab_plan_json,
    render_broken,
    render_collectors,
    render_lab_plan,
    render_matrix,
    render_public,
    render_status,
)
from hercc.diagnostics import OperationError, UsageError, did_you_mean

if TYPE_CHECKING:  # the lab is imported when a lab command runs
    from hercc.lab.overlay import LabPlan
    from hercc.lab.persistent import LabState
    from hercc.plan.apply import Step

LAB_HELP = (
    "Run a spec live on this machine: namespaces, NAT routers, wireguard-go, "
    "gateways, an Internet with DNS, servers on the exposed workloads."
)
NAME_HELP = "the lab's name: 1-31 of a-z 0-9 -, starting with a letter or digit (default: lab)"
LOCK_HELP = (
    "wait at most SECONDS for another `hercc lab up|apply|down` of this lab to finish "
    "(default: wait as long as it takes; 0: fail at once)"
)
# the tools each action runs (every action needs root)
_NEEDS = {
    "up": ("ip", "nft", "wg", "wireguard-go", "ping", "ss", "sysctl"),
    "check": ("ip", "ping"),
    "status": ("ip", "wg"),
    "exec": ("ip",),
    "down": ("ip",),
    "flows": ("ip", "nfdump"),
    "plan": ("ip", "wg"),
    "apply": ("ip", "wg", "wireguard-go", "sysctl"),
}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `lab up|check|status|exec|down|plan|apply|flows` on the top-level commands."""
    lab: argparse.ArgumentParser = subparsers.add_parser("lab", help=LAB_HELP, description=LAB_HELP)
    actions = lab.add_subparsers(
        dest="lab_command", required=True, metavar="ACTION", parser_class=type(lab)
    )

    def action(name: str, help_text: str, name_default: str | None = "lab") -> Any:
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--name", default=name_default, metavar="LAB", help=NAME_HELP)
        if name in ("up", "apply", "down"):
            a.add_argument(
                "--lock-timeout", type=_seconds, default=None, metavar="SECONDS", help=LOCK_HELP
            )
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
        "every member and workload of the same network, and try every public path from "
        "the internet namespace (http, https, tcp through each gateway; DNS per name), and "
        "check each NetFlow collector (nfcapd running, listening, reached from every node); "
        "exit 1 if any fails.",
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
        "WORKLOAD, GATEWAY, router:NODE, underlay or internet (the Internet's client, "
        "with the lab's DNS and CA); node:, workload:, gateway: when names are shared.",
    )
    a.add_argument("target", metavar="TARGET")
    a.add_argument("argv", nargs="+", metavar="CMD", help="the command, after --")
    action("down", "Remove everything the lab created; a lab that does not exist is fine.")
    a = action(
        "plan",
        "Show what applying SPEC to the running lab would change: nodes added, removed "
        "or re-created on the underlay, and every node's overlay, read from the lab's "
        "namespaces as `hercc plan` reads a node.",
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
        "Change the running lab to match SPEC: add, remove or re-create nodes on the "
        "underlay, then change every node's overlay with `hercc apply`'s executor.",
    )
    a.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    a = action(
        "flows",
        "Print what the lab's NetFlow collectors received (nfcapd, read with nfdump once its "
        "file rotates, within 2 s): a table per 5-tuple with packets, bytes, first and last, "
        "and the sequence failures and bad packets that show loss.",
    )
    a.add_argument("--collector", metavar="ADDR", help="only the collector at ADDR or ADDR:PORT")
    a.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: nfdump's records as it prints them, with its totals",
    )
    lab.set_defaults(run=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of seconds, 0 or more")
    return value


def run(args: argparse.Namespace, console: Console) -> int:
    """Run a `lab` action. Data to out, progress and notes to err."""
    from hercc.lab.harness import missing_requirements

    sources, out, err = console.sources, console.out, console.err
    action: str = args.lab_command
    if action not in _NEEDS:
        raise UsageError(f"unknown lab action {action}")
    why = missing_requirements(_NEEDS[action])
    if why is not None:
        raise OperationError(f"hercc lab {action}: {why}")
    if action == "up":
        return _up(args.spec, args.name, args.lock_timeout, sources, err)
    if action == "check":
        return _check(args.name, args.json, out)
    if action == "status":
        return _status(args.name, out)
    if action == "exec":
        return _exec(args.name, args.target, args.argv)
    if action == "plan":
        return _plan(args.name, args.spec, args.json, args.detailed_exitcode, sources, out)
    if action == "apply":
        return _apply(args.name, args.spec, args.lock_timeout, sources, out, err)
    if action == "flows":
        return _flows(args.name, args.collector, args.format, out)
    return _down(args.name, args.lock_timeout, err)


def _waiting(name: str, err: TextIO) -> Callable[[], None]:
    def say() -> None:
        err.write(
            f"waiting for lab {name!r}: another `hercc lab up|apply|down` holds its lock "
            "(--lock-timeout to give up)\n"
        )
        err.flush()

    return say


def _up(
    spec: str, name: str, lock_timeout: float | None, sources: dict[str, str], err: TextIO
) -> int:
    import os

    from hercc.lab import persistent

    if not os.path.exists(spec):
        raise UsageError(f"{spec}: no such file")
    _name(name)
    state = persistent.up_lab(
        spec, name, sources=sources, lock_timeout=lock_timeout, on_wait=_waiting(name, err)
    )
    took = state.timings.get("up", 0.0)
    err.write(
        f"lab {name!r} is up in {took:.1f} s: {len(state.namespaces)} namespaces, "
        f"{len(state.interfaces)} wireguard-go, {_daemons(state)} (prefix {state.prefix}); "
        f"`hercc lab check --name {name}`, `hercc lab down --name {name}`\n"
    )
    err.write(_left_out(state.left_out))
    return ExitCode.OK


def _left_out(lines: list[str]) -> str:
    if not lines:
        return ""
    head = "left out of the lab, which this machine cannot make:\n"
    return head + "".join(f"  {line}\n" for line in lines)


def _name(name: str) -> str:
    from hercc.diagnostics import LabError
    from hercc.lab import persistent

    try:
        return persistent.check_name(name)
    except LabError as exc:
        raise UsageError(str(exc)) from None


def _load(name: str) -> LabState:
    from hercc.lab import persistent

    try:
        return persistent.load_state(_name(name))
    except persistent.NoSuchLab:
        known = persistent.list_labs()
        hint = did_you_mean(name, known)
        have = f" (labs: {', '.join(known)})" if known else " (no labs are up)"
        raise OperationError(f"no lab named {name!r}" + (f"; {hint}" if hint else have)) from None


def _check(name: str, as_json: bool, out: TextIO) -> int:
    from hercc.lab import persistent

    state = _load(name)
    results = persistent.check_lab(state)
    public = persistent.check_public(state)
    collectors = persistent.check_collectors(state)
    if as_json:
        out.write(check_json(name, results, public, collectors))
    else:
        out.write(render_matrix(state, results) + render_public(public))
        out.write(render_collectors(collectors))
    ok = all(r.ok for r in results) and all(p.ok for p in public) and all(c.ok for c in collectors)
    return ExitCode.OK if ok else ExitCode.ERROR


def _status(name: str | None, out: TextIO) -> int:
    import time

    from hercc.diagnostics import LabError
    from hercc.lab import persistent

    names = [_name(name)] if name is not None else persistent.list_labs()
    if name is not None:
        _load(name)
    if not names:
        out.write("no labs\n")
        return ExitCode.OK
    healthy = True
    for lab_name in names:
        try:
            st = persistent.lab_status(persistent.load_state(lab_name))
        except LabError as exc:  # one broken lab does not hide the others
            healthy = False
            out.write(render_broken(lab_name, str(exc)))
            continue
        healthy = healthy and st.healthy
        out.write(render_status(st))
    out.write(f"({time.strftime('%H:%M:%S')})\n")
    return ExitCode.OK if healthy else ExitCode.ERROR


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


def _plan_lab(name: str, spec: str, sources: dict[str, str]) -> LabPlan:
    import os

    from hercc.lab import overlay

    if not os.path.isfile(spec):
        raise UsageError(f"{spec}: no such file")
    return overlay.plan_lab(_load(name), spec, sources)


def _plan(
    name: str,
    spec: str,
    as_json: bool,
    detailed: bool,
    sources: dict[str, str],
    out: TextIO,
) -> int:
    planned = _plan_lab(name, spec, sources)
    out.write(lab_plan_json(planned) if as_json else render_lab_plan(planned))
    return ExitCode.CHANGES if detailed and not planned.no_changes else ExitCode.OK


def _apply(
    name: str,
    spec: str,
    lock_timeout: float | None,
    sources: dict[str, str],
    out: TextIO,
    err: TextIO,
) -> int:
    from hercc.lab import persistent

    _load(name)  # a lab that does not exist is said so before any lock
    with persistent.lab_locked(name, timeout=lock_timeout, on_wait=_waiting(name, err)):
        return _apply_locked(name, spec, sources, out, err)


def _apply_locked(name: str, spec: str, sources: dict[str, str], out: TextIO, err: TextIO) -> int:
    from hercc.lab import overlay

    planned = _plan_lab(name, spec, sources)
    out.write(render_lab_plan(planned))
    if planned.no_changes:
        return ExitCode.OK

    def progress(node: str, step: Step) -> None:
        err.write(f"  {node}: {step.action.symbol} {step.address}\n")

    done = overlay.apply_lab(planned, progress)
    add, change, destroy = planned.counts()
    gateways = [g.gateway for g in planned.gateways if not g.plan.no_changes]
    also = f" and {len(gateways)} gateway(s) ({', '.join(gateways)})" if gateways else ""
    if planned.collectors:
        also += f", NetFlow collectors {' '.join(a.symbol + c.name for a, c in planned.collectors)}"
    err.write(
        f"Apply complete: {add} added, {change} changed, {destroy} destroyed "
        f"on {len(done)} node{'s' if len(done) != 1 else ''} ({', '.join(done)}){also}.\n"
    )
    return ExitCode.OK


def _flows(name: str, collector: str | None, fmt: str, out: TextIO) -> int:
    import time

    from hercc.cli.views.lab_flows import flows_json, render_flows
    from hercc.lab.collector_flows import flows_of

    flows = flows_of(_load(name), collector, time.time())
    out.write(flows_json(name, flows) if fmt == "json" else render_flows(flows))
    return ExitCode.OK


def _down(name: str, lock_timeout: float | None, err: TextIO) -> int:
    from hercc.lab import persistent

    state = persistent.down_lab(_name(name), lock_timeout=lock_timeout, on_wait=_waiting(name, err))
    if state is None:
        err.write(f"no lab named {name!r}: nothing to do\n")
    else:
        err.write(
            f"lab {name!r} is down: removed {len(state.namespaces)} namespaces, "
            f"{len(state.interfaces)} wireguard-go, {_daemons(state)}\n"
        )
    return ExitCode.OK


def _daemons(state: LabState) -> str:
    """`2 servers, 1 named` (the lab's other processes, by role)."""
    roles: dict[str, int] = {}
    for d in state.daemons:
        roles[d.role] = roles.get(d.role, 0) + 1
    word = {"server": "servers", "wireguard-go": "gateway wireguard-go"}
    return ", ".join(f"{n} {word.get(r, r)}" for r, n in sorted(roles.items())) or "no daemons"
