"""`hercc plan|apply SPEC --gateway GW`: a gateway planned and applied like a node.

    hercc plan SPEC --gateway GW [--keys DIR] [--json] [-o PLAN] [--detailed-exitcode]
    hercc apply SPEC --gateway GW [--keys DIR]
    hercc apply PLAN [--keys DIR]                 a saved gateway plan, exactly, or not at all

The plan and the apply are plan/gateway_service.py's (the lab's too). Where
the gateway lives is resources/gateway_naming.GatewayNaming.of: without
--netns-prefix the host's own namespace, the interface `hercgw` and HAProxy
in /run/hercules/haproxy-<gw>/; with --netns-prefix P the namespace
`<P>g-<gw>` (which must exist: whoever runs the gateway makes it, with the
gateway's public addresses), an interface unique to P and the gateway, and
/run/hercules/<P>haproxy-<gw>/. The gateway's private key comes from
KEYS/gateways/<gw>.key. Its records and its lock are those of the owner
"gateway:<gw>" under --state-dir (`gateway:<gw>.lock`). A saved plan says it
is a gateway's, and carries the HAProxy configuration it was made with.
"""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

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
from hercc.diagnostics import UsageError
from hercc.plan.diff import Plan
from hercc.plan.saved import SavedPlan, check_fresh, check_made_like
from hercc.resources.gateway_naming import GatewayNaming

if TYPE_CHECKING:  # imported when run: hercc.state loads pyroute2
    from hercc.plan.gateway_service import GatewayContext
    from hercc.plan.node_service import Planned

KEYS_NOTE = "note: without --keys, the gateway's private key is left as it is\n"


def _refuse_node_options(args: argparse.Namespace) -> None:
    for option, value in (
        ("--confirm-timeout", getattr(args, "confirm_timeout", None)),
        ("--underlay-netns", getattr(args, "underlay_netns", None)),
        ("--links-netns", getattr(args, "links_netns", None)),
    ):
        if value is not None:
            raise UsageError(
                f"{option} is for nodes: a gateway's WireGuard runs in its own namespace"
            )


def _context(args: argparse.Namespace, gateway: str) -> GatewayContext:
    from hercc.plan.gateway_desired import GatewayKeys
    from hercc.plan.gateway_service import GatewayContext
    from hercc.plan.node_service import live_system

    require_root()
    where = keys_dir(args)
    keys = GatewayKeys(where) if where is not None else None
    naming = GatewayNaming.of(gateway, args.netns_prefix)
    return GatewayContext.of(naming, keys, args.state_dir, live_system())


def _make_plan(ctx: GatewayContext, spec: str, console: Console, keys: str | None) -> Planned:
    from hercc.plan.gateway_service import desired_of, plan_gateway
    from hercc.plan.node_service import NameConflict

    desired = desired_of(spec_model(spec, console, keys), ctx)
    try:
        return plan_gateway(ctx, desired)
    except NameConflict as exc:
        raise conflict_error(exc) from None


def _lock(
    args: argparse.Namespace, ctx: GatewayContext, console: Console, *, shared: bool
) -> AbstractContextManager[None]:
    return owner_lock(args, ctx.naming.owner, f"gateway {ctx.gateway}", console.err, shared=shared)


def run_plan(args: argparse.Namespace, console: Console) -> int:
    ctx = _context(args, args.gateway)
    with _lock(args, ctx, console, shared=True):
        planned = _make_plan(ctx, args.spec, console, args.keys)
    notes = [KEYS_NOTE] if args.keys is None else []
    return report_plan(
        args,
        console,
        planned,
        ctx.gateway,
        ctx.naming,
        notes,
        target="gateway",
    )


def run_apply(args: argparse.Namespace, console: Console, saved: SavedPlan | None) -> int:
    from hercc.plan.gateway_service import read_gateway

    _refuse_node_options(args)
    if saved is None:
        ctx = _context(args, args.gateway)
    else:
        ctx = _context(args, saved_for(args, saved, "gateway", args.gateway))
        check_made_like(saved, ctx.naming, with_keys=args.keys is not None)
    with _lock(args, ctx, console, shared=False):
        if saved is None:
            plan = _make_plan(ctx, args.target, console, args.keys).plan
        else:
            live, _foreign = read_gateway(ctx)
            check_fresh(saved, live)
            plan = saved.plan
        console.out.write(render_plan(plan, gateway=True))
        if plan.no_changes:
            return ExitCode.OK
        _execute(ctx, plan, console)
    return ExitCode.OK


def _execute(ctx: GatewayContext, plan: Plan, console: Console) -> None:
    from hercc.plan.gateway_service import apply_gateway
    from hercc.plan.node_service import check_wireguard

    check_wireguard(plan)
    run_steps(
        plan,
        f"gateway {ctx.gateway}",
        console.err,
        lambda progress: apply_gateway(ctx, plan, progress=progress),
    )
