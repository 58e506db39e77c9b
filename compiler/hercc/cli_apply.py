"""`hercc plan` and `hercc apply`: compare a node with its spec, then change it.

cli.py registers the commands with add_apply_commands and dispatches `plan`
and `apply` to run_apply. Like cli.py this module prints; errors are raised as
HerccError subclasses for cli.main to turn into exit codes.

    hercc plan SPEC --node N [--keys DIR] [--json] [-o plan.json] [--detailed-exitcode]
    hercc apply SPEC --node N [--keys DIR] [--confirm-timeout S]
    hercc apply plan.json [--keys DIR]          a saved plan, exactly, or not at all
    hercc apply --confirm --node N              keep a change waiting in its confirm window

The live side is read with hercc.state (what the registry under --state-dir
and the `hercules:<node>` aliases say is ours). A plan refuses to create a
name that exists and is not ours. `--netns-prefix P` puts P in front of every
namespace name (tests, the lab); `--underlay-netns NS` runs wireguard-go in NS
so that its UDP socket lives there (default: the host's namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

from hercc import ir
from hercc.diagnostics import OperationError, UsageError
from hercc.plan.apply import ApplyFailed, Step, apply_steps, confirm_window, steps_of
from hercc.plan.desired import DirKeys, KeyLookup, desired_state
from hercc.plan.diff import Plan, diff
from hercc.plan.render import plan_to_json, render_plan
from hercc.plan.saved import check_fresh, load_plan, save_plan
from hercc.resources.action import Action
from hercc.resources.ids import InterfaceId, PeerId, RouteId, SysctlId
from hercc.resources.model import STATE_DIR, State, state_of
from hercc.resources.naming import WORKLOAD_IFNAME, Naming
from hercc.resources.sysctl import SYSCTL_DEFAULTS

PLAN_HELP = "Show what applying SPEC would change on a node."
APPLY_HELP = "Change a node to match its spec (or a saved plan), transactionally."
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
SOCKET_DIR = "/var/run/wireguard"


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
        "--state-dir",
        default=STATE_DIR,
        metavar="DIR",
        help=f"where Hercules records what it owns (default {STATE_DIR})",
    )


def add_apply_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `plan` and `apply`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help=PLAN_HELP,
        description=PLAN_HELP,
        epilog="Exit status: 0 ok (with --detailed-exitcode: no changes), 1 error, 2 changes.",
    )
    p.add_argument("spec", metavar="SPEC", help="a .herc or .herc.yaml file")
    p.add_argument("--node", required=True, metavar="NODE", help="the node to plan for")
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
    a.add_argument("--node", metavar="NODE", help="the node (required with a spec)")
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


# --------------------------------------------------------------------------- live state


def naming_for(prefix: str) -> Naming:
    base = Naming()
    return replace(
        base,
        netns_prefix=prefix + base.netns_prefix,
        workload_netns_prefix=prefix + base.workload_netns_prefix,
    )


def _network_namespaces(desired: State) -> set[str]:
    return {r.id_as(InterfaceId).ns for r in desired.values() if r.kind == "wireguard"}


def read_live(
    node: str,
    desired: State,
    owned: Iterable[str],
    reader: Any,
    workload_ifname: str = WORKLOAD_IFNAME,
) -> tuple[State, frozenset[str]]:
    """The live state of `node` in the form of `desired`, and the foreign names.

    What to read: the owned namespaces, the desired ones that exist without
    being ours (they may hold an end of a veth of ours), and the managed
    sysctls (model.SYSCTL_DEFAULTS, plus any desired) in every network
    namespace and every owned one that is not desired. The reader returns the
    state as is: the rules it shares with the desired state (veth pairs,
    sysctl defaults, private key fingerprints, link-local addresses) are
    applied by hercc.state and hercc.resources.
    """
    owned = frozenset(owned)
    desired_ns = {r.id for r in desired.values() if r.kind == "netns"}
    sysctl_ns = _network_namespaces(desired) | (owned - desired_ns)
    keys = set(SYSCTL_DEFAULTS) | {
        r.id_as(SysctlId).key for r in desired.values() if r.kind == "sysctl"
    }
    live = reader.read(
        node,
        owned,
        also=sorted(desired_ns - owned),
        sysctls={ns: keys for ns in sysctl_ns},
        workload_ifname=workload_ifname,
    )
    return dict(live.state), frozenset(live.foreign)


def conflicts(plan: Plan, foreign: frozenset[str], socket_dir: str = SOCKET_DIR) -> list[str]:
    """Why the plan must not run: names it would create that exist and are not ours."""
    out: list[str] = []
    for c in plan.changes:
        if c.action is not Action.CREATE or c.after is None:
            continue
        r = c.after
        if r.kind == "netns" and r.id in foreign:
            out.append(f"namespace {r.id} exists and is not Hercules' (not in the registry)")
        elif r.kind in ("wireguard", "veth"):
            ns, ifname = r.id_as(InterfaceId)
            if r.id in foreign:
                out.append(
                    f"interface {ifname} exists in namespace {ns} and is not Hercules' "
                    "(no hercules alias)"
                )
            if r.kind == "wireguard" and os.path.exists(os.path.join(socket_dir, f"{ifname}.sock")):
                out.append(
                    f"interface {ifname} exists and is not Hercules' here: "
                    f"{socket_dir}/{ifname}.sock is in use"
                )
            if r.kind == "veth":
                other = f"{r.attrs.get('peer_netns')}/{r.attrs.get('peer_ifname')}"
                if other in foreign:
                    out.append(
                        f"interface {r.attrs.get('peer_ifname')} exists in namespace "
                        f"{r.attrs.get('peer_netns')} and is not Hercules' (no hercules alias)"
                    )
        elif r.kind == "route" and r.id in foreign:
            ns, dst = r.id_as(RouteId)
            out.append(f"route {dst} exists in namespace {ns} and is not Hercules'")
    return out


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    node: str
    naming: Naming
    keys: KeyLookup | None
    state_dir: str
    registry: Any
    reader: Any
    wireguard: Any


def _require_root() -> None:
    if os.geteuid() != 0:
        raise OperationError(
            "hercc plan and apply need root (they read and change network namespaces "
            "and WireGuard devices); run them with sudo"
        )


def _context(args: argparse.Namespace, node: str) -> Context:
    from hercc.state import OwnedRegistry, ProcSysctl, PyrouteNetlink, StateReader, default_driver

    _require_root()
    keys: KeyLookup | None = None
    if args.keys is not None:
        if not os.path.isdir(args.keys):
            raise OperationError(f"{args.keys}: no such keys directory")
        keys = DirKeys(args.keys)
    netlink = PyrouteNetlink()
    wg = default_driver()
    return Context(
        node=node,
        naming=naming_for(args.netns_prefix),
        keys=keys,
        state_dir=args.state_dir,
        registry=OwnedRegistry(node, args.state_dir),
        reader=StateReader(netlink, wg, ProcSysctl()),
        wireguard=wg,
    )


def _compile(spec: str, keys_dir: str | None, sources: dict[str, str]) -> ir.IR:
    from hercc.pipeline import compile_spec

    if not os.path.isfile(spec):
        raise UsageError(f"{spec}: no such file")
    return compile_spec(spec, sources, keys_dir=keys_dir).ir


def _keep_live_secrets(desired: State, live: State) -> State:
    """Without --keys, private and preshared keys are left as they are."""
    out = dict(desired)
    for address, r in desired.items():
        have = live.get(address)
        if have is None:
            continue
        attrs = dict(r.attrs)
        for name in ("private_key", "preshared_key"):
            if name in attrs and name in have.attrs:
                attrs[name] = have.attrs[name]
        out[address] = replace(r, attrs=attrs)
    return out


@dataclass
class Planned:
    plan: Plan
    desired: State
    live: State


def make_plan(ctx: Context, spec: str, sources: dict[str, str], keys_dir: str | None) -> Planned:
    model = _compile(spec, keys_dir, sources)
    desired = state_of(desired_state(model, ctx.node, ctx.naming, ctx.keys))
    live, foreign = read_live(
        ctx.node,
        desired,
        ctx.registry.load(),
        ctx.reader,
        ctx.naming.workload_ifname,
    )
    if ctx.keys is None:
        desired = _keep_live_secrets(desired, live)
    plan = diff(desired, live)
    problems = conflicts(plan, foreign)
    if problems:
        raise OperationError(
            "refusing to plan: " + "; ".join(problems) + "; remove or rename it, "
            "or choose other names (--netns-prefix)"
        )
    return Planned(plan, desired, live)


# --------------------------------------------------------------------------- commands


def run_apply(
    args: argparse.Namespace,
    sources: dict[str, str],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run `plan` or `apply`; returns the exit code. Errors raise HerccError."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if args.command == "plan":
        return _plan(args, sources, out, err)
    if args.command == "apply":
        return _apply(args, sources, out, err)
    raise UsageError(f"unknown command {args.command}")


def _plan(args: argparse.Namespace, sources: dict[str, str], out: TextIO, err: TextIO) -> int:
    ctx = _context(args, args.node)
    planned = make_plan(ctx, args.spec, sources, args.keys)
    if args.json:
        out.write(ir.dumps(plan_to_json(planned.plan)))
    else:
        out.write(render_plan(planned.plan))
    if args.keys is None:
        err.write("note: without --keys, private and preshared keys are left as they are\n")
    if args.out is not None:
        save_plan(planned.plan, args.node, planned.live, planned.desired, args.out, args.spec)
        err.write(f"saved the plan to {args.out}; apply it with `hercc apply {args.out}`\n")
    if args.detailed_exitcode and not planned.plan.no_changes:
        return EXIT_CHANGES
    return EXIT_OK


def confirm_path(state_dir: str, node: str) -> str:
    from hercc.state.registry import OwnedRegistry

    OwnedRegistry(node, state_dir)  # validates the node name
    return os.path.join(state_dir, f"{node}.confirm")


def _apply(args: argparse.Namespace, sources: dict[str, str], out: TextIO, err: TextIO) -> int:
    if args.confirm:
        if args.node is None:
            raise UsageError("--confirm needs --node")
        _require_root()
        path = confirm_path(args.state_dir, args.node)
        try:
            os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(f"{time.time():.3f}\n")
        except OSError as exc:
            raise OperationError(f"{path}: cannot write: {exc.strerror or exc}") from None
        err.write(f"confirmed the change on node {args.node}\n")
        return EXIT_OK
    if args.target is None:
        raise UsageError("apply needs a SPEC or a saved plan")
    if args.confirm_timeout is not None and args.confirm_timeout <= 0:
        raise UsageError("--confirm-timeout must be positive")
    if args.target.endswith(".json"):
        saved = load_plan(args.target)
        if args.node is not None and args.node != saved.node:
            raise OperationError(
                f"{args.target} was made for node {saved.node}, not {args.node}; "
                f"plan again with --node {args.node}"
            )
        ctx = _context(args, saved.node)
        live, _foreign = read_live(
            ctx.node,
            saved.desired,
            ctx.registry.load(),
            ctx.reader,
            ctx.naming.workload_ifname,
        )
        check_fresh(saved, live)
        plan = saved.plan
    else:
        if args.node is None:
            raise UsageError("apply SPEC needs --node NODE")
        ctx = _context(args, args.node)
        plan = make_plan(ctx, args.target, sources, args.keys).plan
    out.write(render_plan(plan))
    if plan.no_changes:
        return EXIT_OK
    return _execute(ctx, plan, args, err)


def _executor(ctx: Context, args: argparse.Namespace) -> Any:
    from hercc.plan.executor import SystemExecutor

    return SystemExecutor(
        ctx.node,
        ctx.naming,
        ctx.keys,
        ctx.wireguard,
        ctx.registry,
        args.underlay_netns,
        state_dir=ctx.state_dir,
    )


def _check_wireguard(plan: Plan) -> None:
    from hercc.plan.executor import wireguard_unavailable_reason

    if any(c.after is not None and c.after.kind == "wireguard" for c in plan.changes):
        reason = wireguard_unavailable_reason()
        if reason is not None:
            raise OperationError(reason)


def _execute(ctx: Context, plan: Plan, args: argparse.Namespace, err: TextIO) -> int:
    _check_wireguard(plan)
    steps = steps_of(plan)
    executor = _executor(ctx, args)
    start = time.time()

    def progress(step: Step) -> None:
        err.write(f"  {step.action.symbol} {step.address}\n")

    err.write(f"applying {len(steps)} change{'s' if len(steps) != 1 else ''} to {ctx.node}\n")
    try:
        log = apply_steps(steps, executor, progress)
    except ApplyFailed as exc:
        raise OperationError(f"apply failed and was rolled back: {exc}") from None
    except KeyboardInterrupt:
        err.write("hercc: interrupted; the changes made so far were rolled back\n")
        raise
    add, change, destroy = plan.counts()
    err.write(f"Apply complete: {add} added, {change} changed, {destroy} destroyed.\n")
    if args.confirm_timeout is None:
        return EXIT_OK
    path = confirm_path(ctx.state_dir, ctx.node)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    err.write(
        f"waiting {args.confirm_timeout:g} s for `hercc apply --confirm --node {ctx.node}`; "
        "without it the change is reverted\n"
    )
    try:
        result = confirm_window(
            log,
            args.confirm_timeout,
            lambda: os.path.exists(path),
            lambda: _healthy(ctx, plan, start),
            time.monotonic,
            time.sleep,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if result == "confirmed":
        err.write("confirmed: the change is kept\n")
        return EXIT_OK
    why = {
        "reverted-timeout": "no confirmation in time",
        "reverted-unhealthy": "no confirmation in time, and no peer answered",
        "reverted-interrupt": "interrupted",
    }[result]
    err.write(f"reverted ({why}): the node is back as it was\n")
    return EXIT_ERROR


def _healthy(ctx: Context, plan: Plan, since: float) -> bool:
    """A peer with an endpoint shook hands since the apply began (or none has an endpoint)."""
    interfaces: dict[str, Mapping[str, Any]] = {}
    for c in plan.changes:
        r = c.after
        if r is not None and r.kind == "peer" and r.attrs.get("endpoint"):
            ns, ifname, _ = r.id_as(PeerId)
            interfaces[ifname] = {"netns": ns}
    if not interfaces:
        return True
    for ifname, where in sorted(interfaces.items()):
        try:
            device = ctx.wireguard.read(ifname, netns=where["netns"])
        except OperationError:
            continue
        if any(p.last_handshake and p.last_handshake >= since for p in device.peers.values()):
            return True
    return False
