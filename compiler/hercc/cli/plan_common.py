"""What `hercc plan` and `hercc apply` share for nodes and gateways.

Root, the keys directory, the spec's model, the lock, and the run of an
apply's steps with its progress lines. A plan holds a shared lock on its
target, an apply an exclusive one, in `<state-dir>/<owner>.lock` (owner: the
node's name, or "gateway:<gw>"), waited for, or for at most --lock-timeout
seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from hercc import ir
from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.cli.views.plan import plan_to_json, render_plan
from hercc.diagnostics import OperationError, UsageError
from hercc.plan.apply import ApplyFailed, Step, UndoLog, steps_of
from hercc.plan.diff import Plan
from hercc.plan.saved import SavedPlan, save_plan
from hercc.resources.gateway_naming import GatewayNaming
from hercc.resources.naming import Naming
from hercc.sysio.lock import LockTimeout, locked

if TYPE_CHECKING:  # imported when run: hercc.state loads pyroute2
    from hercc.plan.node_service import Planned

Progress = Callable[[Step], None]


def require_root() -> None:
    if os.geteuid() != 0:
        raise OperationError(
            "hercc plan and apply need root (they read and change network namespaces "
            "and WireGuard devices); run them with sudo"
        )


@contextlib.contextmanager
def owner_lock(
    args: argparse.Namespace, owner: str, what: str, err: TextIO, *, shared: bool
) -> Iterator[None]:
    """The lock of `owner` (`what`: "node N", "gateway G") under --state-dir."""
    if args.lock_timeout is not None and args.lock_timeout < 0:
        raise UsageError("--lock-timeout must not be negative")

    def waiting(holder: int | None) -> None:
        who = f"PID {holder}" if holder is not None else "another hercc"
        err.write(f"hercc: waiting for the lock on {what} held by {who}...\n")

    path = os.path.join(args.state_dir, f"{owner}.lock")
    try:
        os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OperationError(f"{args.state_dir}: cannot create: {exc.strerror or exc}") from None
    lock = locked(path, what=what, shared=shared, timeout=args.lock_timeout, on_wait=waiting)
    with contextlib.ExitStack() as stack:
        try:  # only taking the lock: errors of the block are the caller's
            stack.enter_context(lock)
        except LockTimeout as exc:
            raise OperationError(
                f"{exc} ({path}); another hercc plan or apply is running on this "
                f"{what.split()[0]}: wait for it, or try again with a longer --lock-timeout"
            ) from None
        except OSError as exc:  # the lock file cannot be made or opened
            raise OperationError(f"{path}: cannot lock: {exc.strerror}") from None
        yield


def saved_for(args: argparse.Namespace, saved: SavedPlan, kind: str, asked: str | None) -> str:
    """The node (or gateway: `kind`) a saved plan was made for; OperationError when
    --node (--gateway) names another."""
    if asked is not None and asked != saved.node:
        raise OperationError(
            f"{args.target} was made for {kind} {saved.node}, not {asked}; "
            f"plan again with --{kind} {asked}"
        )
    return saved.node


def keys_dir(args: argparse.Namespace) -> str | None:
    """--keys, when given, checked to be a directory."""
    if args.keys is not None and not os.path.isdir(args.keys):
        raise OperationError(f"{args.keys}: no such keys directory")
    keys: str | None = args.keys
    return keys


def spec_model(spec: str, console: Console, keys: str | None) -> ir.IR:
    """The IR of SPEC (UsageError when there is no such file)."""
    from hercc.pipeline import compile_spec

    if not os.path.isfile(spec):
        raise UsageError(f"{spec}: no such file")
    return compile_spec(spec, console.sources, keys_dir=keys).ir


def conflict_error(exc: Exception) -> OperationError:
    """A NameConflict in the CLI's words."""
    return OperationError(f"{exc}; remove or rename it, or choose other names (--netns-prefix)")


def run_steps(plan: Plan, what: str, err: TextIO, apply: Callable[[Progress], UndoLog]) -> UndoLog:
    """`apply(progress)` with a line per step on `err`; a rolled back failure as one error."""
    steps = steps_of(plan)

    def progress(step: Step) -> None:
        err.write(f"  {step.action.symbol} {step.address}\n")

    err.write(f"applying {len(steps)} change{'s' if len(steps) != 1 else ''} to {what}\n")
    try:
        log = apply(progress)
    except ApplyFailed as exc:
        raise OperationError(f"apply failed and was rolled back: {exc}") from None
    except KeyboardInterrupt:
        err.write("hercc: interrupted; the changes made so far were rolled back\n")
        raise
    add, change, destroy = plan.counts()
    err.write(f"Apply complete: {add} added, {change} changed, {destroy} destroyed.\n")
    return log


def report_plan(
    args: argparse.Namespace,
    console: Console,
    planned: Planned,
    name: str,
    naming: Naming | GatewayNaming,
    notes: Sequence[str],
    *,
    target: str = "node",
) -> int:
    """The plan (text or --json), the notes, the saved plan (-o); the exit code."""
    if args.json:
        console.out.write(ir.dumps(plan_to_json(planned.plan)))
    else:
        console.out.write(render_plan(planned.plan, gateway=target == "gateway"))
    for note in notes:
        console.err.write(note)
    if args.out is not None:
        save_plan(
            planned.plan,
            name,
            planned.live,
            planned.desired,
            args.out,
            args.spec,
            naming=naming,
            with_keys=args.keys is not None,
            target=target,
        )
        console.err.write(f"saved the plan to {args.out}; apply it with `hercc apply {args.out}`\n")
    if args.detailed_exitcode and not planned.plan.no_changes:
        return ExitCode.CHANGES
    return ExitCode.OK
