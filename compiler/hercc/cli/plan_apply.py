"""`hercc plan` and `hercc apply`: compare a node with its spec, then change it.

    hercc plan SPEC --node N [--keys DIR] [--secrets FILE] [--vici SOCKET] [--json] [-o PLAN]
    hercc apply SPEC --node N [--keys DIR] [--confirm-timeout S]
    hercc apply PLAN [--keys DIR]               a saved plan, exactly, or not at all
    hercc apply --confirm --node N              keep a change waiting in its confirm window
    hercc plan|apply SPEC --gateway GW          a gateway instead (cli/plan_gateway.py)

The plan and the apply are plan/node_service.py's (the lab's too), the
confirm window plan/node_confirm.py's: the live side is read with
hercc.state (what the registry under --state-dir and the `hercules:<node>`
aliases say is ours), and a plan refuses to create a name that exists and is
not ours. `--netns-prefix P` puts P in front of every namespace name (tests,
the lab); `--underlay-netns NS` runs wireguard-go in NS so that its UDP
socket lives there (default: the host's namespace). IPsec links go to the
charon at `--vici SOCKET` (default /var/run/charon.vici), with their secrets
from `--secrets FILE` (0600) or HERC_SECRET_<NAME>, resolved by plan and by
apply and never written anywhere.

A saved plan is known by its content, whatever its name (plan/saved.py). A
plan holds a shared lock on the node (`<state-dir>/<node>.lock`), an apply
an exclusive one from its plan to its end (its confirm window included), so
that two applies never interleave and a plan never reads a half-made change;
a busy lock is waited for, or for at most --lock-timeout seconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from hercc.cli import plan_gateway
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.plan_common import (
    conflict_error,
    keys_dir,
    owner_lock,
    report_plan,
    require_root,
    run_steps,
    saved_for,
    spec_model,
)
from hercc.cli.views.plan import render_plan
from hercc.diagnostics import OperationError, UsageError
from hercc.plan.desired import DirKeys, KeyLookup
from hercc.plan.diff import Plan
from hercc.plan.saved import check_fresh, check_made_like, sniff_plan
from hercc.resources.ipsec import DEFAULT_VICI
from hercc.resources.model import STATE_DIR

if TYPE_CHECKING:  # imported when run: hercc.state loads pyroute2, which other commands skip
    from hercc.plan.node_service import NodeContext, Planned

PLAN_HELP = "Show what applying SPEC would change on a node."
APPLY_HELP = "Change a node to match its spec (or a saved plan), transactionally."


# --------------------------------------------------------------------------- arguments


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="DIR", help="keys directory (hercc keys init)")
    p.add_argument(
        "--netns-prefix",
        default="",
        metavar="P",
        help="put P in front of every namespace name (tests, labs)",
    )
    p.add_argument(
        "--links-netns",
        metavar="NS",
        help="where the enterprise links (VXLAN, VLAN, bridges) live (default: the host's)",
    )
    p.add_argument(
        "--state-dir",
        default=STATE_DIR,
        metavar="DIR",
        help=f"where Hercules records what it owns (default {STATE_DIR})",
    )
    p.add_argument(
        "--secrets",
        metavar="FILE",
        help='the values of secret("name") (0600; else HERC_SECRET_<NAME>)',
    )
    p.add_argument(
        "--vici",
        default=DEFAULT_VICI,
        metavar="SOCKET",
        help=f"charon's VICI socket, for IPsec links (default {DEFAULT_VICI})",
    )
    p.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        help="wait at most SECONDS for the node's lock (default: as long as it takes; 0: not)",
    )


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `plan` and `apply`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help=PLAN_HELP,
        description=PLAN_HELP,
        epilog="Exit status: 0 ok (with --detailed-exitcode: no changes), 1 error, 2 changes.",
    )
    p.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--node", metavar="NODE", help="the node to plan for")
    target.add_argument("--gateway", metavar="GW", help="the gateway to plan for")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("-o", "--out", metavar="FILE", help="save the plan for `hercc apply FILE`")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are",
    )
    a: argparse.ArgumentParser = subparsers.add_parser(
        "apply", help=APPLY_HELP, description=APPLY_HELP
    )
    a.add_argument(
        "target", nargs="?", metavar="SPEC|PLAN", help="a spec, or a plan saved by plan -o"
    )
    applied = a.add_mutually_exclusive_group()
    applied.add_argument("--node", metavar="NODE", help="the node (a spec needs it or --gateway)")
    applied.add_argument("--gateway", metavar="GW", help="the gateway (instead of a node)")
    _common(a)
    a.add_argument(
        "--underlay-netns",
        metavar="NS",
        help="run wireguard-go in this namespace (default: the host's)",
    )
    a.add_argument(
        "--confirm-timeout",
        type=float,
        metavar="SECONDS",
        help="revert unless `hercc apply --confirm --node N` comes within SECONDS",
    )
    a.add_argument(
        "--confirm",
        action="store_true",
        help="confirm the change an apply with --confirm-timeout is waiting on",
    )
    p.set_defaults(run=run)
    a.set_defaults(run=run)


def _context(args: argparse.Namespace, node: str) -> NodeContext:
    from hercc.plan.ipsec_setup import IpsecSetup
    from hercc.plan.node_service import NodeContext, live_system, naming_for

    require_root()
    where = keys_dir(args)
    keys = DirKeys(where) if where is not None else None
    lookup: KeyLookup | None = keys
    naming = replace(naming_for(args.netns_prefix), links_netns=args.links_netns)
    ipsec = IpsecSetup(args.vici, args.secrets)
    return NodeContext.of(node, naming, lookup, args.state_dir, live_system(), keys, ipsec)


def _make_plan(ctx: NodeContext, spec: str, console: Console, keys: str | None) -> Planned:
    from hercc.plan.node_service import NameConflict, desired_of, plan_node

    model = spec_model(spec, console, keys)
    try:
        return plan_node(ctx, desired_of(model, ctx))
    except NameConflict as exc:
        raise conflict_error(exc) from None


# --------------------------------------------------------------------------- commands


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `plan` or `apply`. Errors raise HerccError."""
    if args.command == "plan":
        return _plan(args, console)
    if args.command == "apply":
        return _apply(args, console)
    raise UsageError(f"unknown command {args.command}")


def _psk_warning(planned: Planned) -> str | None:
    """Without keys: which peers want a PSK that cannot be checked (or made)."""
    wanted = sorted(
        r.label or r.address
        for r in planned.desired.values()
        if r.kind == "peer" and r.attrs.get("preshared_key") is not None
    )
    if not wanted:
        return None
    return (
        f"warning: without --keys, the preshared keys of {len(wanted)} peer"
        f"{'s' if len(wanted) != 1 else ''} ({', '.join(wanted)}) cannot be checked, "
        "and a missing one cannot be created\n"
    )


def _plan(args: argparse.Namespace, console: Console) -> int:
    if args.gateway is not None:
        return plan_gateway.run_plan(args, console)
    ctx = _context(args, args.node)
    with owner_lock(args, ctx.node, f"node {ctx.node}", console.err, shared=True):
        planned = _make_plan(ctx, args.spec, console, args.keys)
    notes: list[str] = []
    if args.keys is None:
        notes.append("note: without --keys, private and preshared keys are left as they are\n")
        warning = _psk_warning(planned)
        if warning is not None:
            notes.append(warning)
    return report_plan(args, console, planned, args.node, ctx.naming, notes)


def _apply(args: argparse.Namespace, console: Console) -> int:
    from hercc.plan.node_confirm import confirm
    from hercc.plan.node_service import read_live

    if args.confirm:
        if args.node is None:
            raise UsageError("--confirm needs --node (a gateway's apply has no confirm window)")
        require_root()
        confirm(args.state_dir, args.node)
        console.err.write(f"confirmed the change on node {args.node}\n")
        return ExitCode.OK
    if args.target is None:
        raise UsageError("apply needs a SPEC or a saved plan")
    if args.confirm_timeout is not None and args.confirm_timeout <= 0:
        raise UsageError("--confirm-timeout must be positive")
    saved = sniff_plan(args.target)
    if args.gateway is not None or (saved is not None and saved.target == "gateway"):
        if args.node is not None:
            raise OperationError(f"{args.target} was made for a gateway, not for node {args.node}")
        return plan_gateway.run_apply(args, console, saved)
    if saved is None:
        if args.node is None:
            raise UsageError("apply SPEC needs --node NODE or --gateway GW")
        ctx = _context(args, args.node)
    else:
        ctx = _context(args, saved_for(args, saved, "node", args.node))
        check_made_like(saved, ctx.naming, with_keys=args.keys is not None)
    with owner_lock(args, ctx.node, f"node {ctx.node}", console.err, shared=False):
        if saved is None:
            plan = _make_plan(ctx, args.target, console, args.keys).plan
        else:
            live, _foreign = read_live(
                ctx.node,
                saved.desired,
                ctx.registry.load(),
                ctx.system.reader,
                ctx.naming.workload_ifname,
                ctx.state_dir,
                ctx.charon(),
            )
            check_fresh(saved, live)
            plan = saved.plan
        console.out.write(render_plan(plan))
        if plan.no_changes:
            return ExitCode.OK
        return _execute(ctx, plan, args, console.err)


def _execute(ctx: NodeContext, plan: Plan, args: argparse.Namespace, err: TextIO) -> int:
    from hercc.plan.node_confirm import await_confirmation, clear_confirmation
    from hercc.plan.node_service import MissingPsk, apply_plan, check_wireguard, make_psks

    check_wireguard(plan)
    try:
        plan = make_psks(ctx, plan)  # before anything changes: PSK files only
    except MissingPsk as exc:
        raise OperationError(f"{exc}; pass --keys DIR, the keys directory of the spec") from None
    start = time.time()
    log = run_steps(
        plan,
        ctx.node,
        err,
        lambda progress: apply_plan(ctx, plan, args.underlay_netns, progress=progress),
    )
    if args.confirm_timeout is None:
        return ExitCode.OK
    clear_confirmation(ctx)
    err.write(
        f"waiting {args.confirm_timeout:g} s for `hercc apply --confirm --node {ctx.node}`; "
        "without it the change is reverted\n"
    )
    result = await_confirmation(ctx, plan, log, args.confirm_timeout, start)
    if result == "confirmed":
        err.write("confirmed: the change is kept\n")
        return ExitCode.OK
    why = {
        "reverted-timeout": "no confirmation in time",
        "reverted-unhealthy": "no confirmation in time, and no peer answered",
        "reverted-interrupt": "interrupted",
    }[result]
    err.write(f"reverted ({why}): the node is back as it was\n")
    return ExitCode.ERROR
