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
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from hercc import ir
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.plan_lock import owner_lock, require_root
from hercc.cli.views.plan import plan_to_json, render_plan
from hercc.diagnostics import OperationError, UsageError
from hercc.plan.apply import ApplyFailed, Step, steps_of
from hercc.plan.diff import Plan
from hercc.plan.saved import SavedPlan, check_fresh, check_made_like, save_plan
from hercc.resources.gateway_naming import GatewayNaming

if TYPE_CHECKING:  # imported when run: hercc.state loads pyroute2
    from hercc.plan.gateway_desired import GatewayDesired
    from hercc.plan.gateway_service import GatewayContext
    from hercc.plan.node_service import Planned

KEYS_NOTE = "note: without --keys, the gateway's private key is left as it is\n"


def _refuse_node_options(args: argparse.Namespace) -> None:
    for option, value in (
        ("--confirm-timeout", getattr(args, "confirm_timeout", None)),
        ("--underlay-netns", getattr(args, "underlay_netns", None)),
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
    keys: GatewayKeys | None = None
    if args.keys is not None:
        if not os.path.isdir(args.keys):
            raise OperationError(f"{args.keys}: no such keys directory")
        keys = GatewayKeys(args.keys)
    naming = GatewayNaming.of(gateway, args.netns_prefix)
    return GatewayContext.of(naming, keys, args.state_dir, live_system())


def _make_plan(
    ctx: GatewayContext, spec: str, console: Console, keys_dir: str | None
) -> tuple[Planned, GatewayDesired]:
    from hercc.pipeline import compile_spec
    from hercc.plan.gateway_service import desired_of, plan_gateway
    from hercc.plan.node_service import NameConflict

    if not os.path.isfile(spec):
        raise UsageError(f"{spec}: no such file")
    model = compile_spec(spec, console.sources, keys_dir=keys_dir).ir
    desired = desired_of(model, ctx)
    try:
        return plan_gateway(ctx, desired.state), desired
    except NameConflict as exc:
        raise OperationError(
            f"{exc}; remove or rename it, or choose other names (--netns-prefix)"
        ) from None


def _lock(
    args: argparse.Namespace, ctx: GatewayContext, console: Console, *, shared: bool
) -> AbstractContextManager[None]:
    return owner_lock(args, ctx.naming.owner, f"gateway {ctx.gateway}", console.err, shared=shared)


def run_plan(args: argparse.Namespace, console: Console) -> int:
    ctx = _context(args, args.gateway)
    with _lock(args, ctx, console, shared=True):
        planned, desired = _make_plan(ctx, args.spec, console, args.keys)
    if args.json:
        console.out.write(ir.dumps(plan_to_json(planned.plan)))
    else:
        console.out.write(render_plan(planned.plan))
    if args.keys is None:
        console.err.write(KEYS_NOTE)
    if args.out is not None:
        save_plan(
            planned.plan,
            ctx.gateway,
            planned.live,
            planned.desired,
            args.out,
            args.spec,
            naming=ctx.naming,
            with_keys=args.keys is not None,
            target="gateway",
            contents=desired.configs,
        )
        console.err.write(f"saved the plan to {args.out}; apply it with `hercc apply {args.out}`\n")
    if args.detailed_exitcode and not planned.plan.no_changes:
        return ExitCode.CHANGES
    return ExitCode.OK


def run_apply(args: argparse.Namespace, console: Console, saved: SavedPlan | None) -> int:
    from hercc.plan.gateway_service import read_gateway

    _refuse_node_options(args)
    if saved is None:
        ctx = _context(args, args.gateway)
    else:
        if args.gateway is not None and args.gateway != saved.node:
            raise OperationError(
                f"{args.target} was made for gateway {saved.node}, not {args.gateway}; "
                f"plan again with --gateway {args.gateway}"
            )
        ctx = _context(args, saved.node)
        check_made_like(saved, ctx.naming, with_keys=args.keys is not None)
    with _lock(args, ctx, console, shared=False):
        if saved is None:
            planned, desired = _make_plan(ctx, args.target, console, args.keys)
            plan, configs = planned.plan, desired.configs
        else:
            live, _foreign = read_gateway(ctx)
            check_fresh(saved, live)
            plan, configs = saved.plan, saved.contents
        console.out.write(render_plan(plan))
        if plan.no_changes:
            return ExitCode.OK
        _execute(ctx, plan, configs, console)
    return ExitCode.OK


def _execute(ctx: GatewayContext, plan: Plan, configs: Mapping[str, str], console: Console) -> None:
    from hercc.plan.gateway_service import apply_gateway
    from hercc.plan.node_service import check_wireguard

    check_wireguard(plan)
    steps = steps_of(plan)
    err = console.err

    def progress(step: Step) -> None:
        err.write(f"  {step.action.symbol} {step.address}\n")

    s = "s" if len(steps) != 1 else ""
    err.write(f"applying {len(steps)} change{s} to gateway {ctx.gateway}\n")
    try:
        apply_gateway(ctx, plan, configs, progress=progress)
    except ApplyFailed as exc:
        raise OperationError(f"apply failed and was rolled back: {exc}") from None
    except KeyboardInterrupt:
        err.write("hercc: interrupted; the changes made so far were rolled back\n")
        raise
    add, change, destroy = plan.counts()
    err.write(f"Apply complete: {add} added, {change} changed, {destroy} destroyed.\n")
