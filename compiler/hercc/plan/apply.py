"""Apply: carry out a plan's steps in order, transactionally.

Every step that succeeds pushes its inverse onto an undo log. If a step
fails, the log is replayed backwards, so the node is left as it was, and the
failure is raised as ApplyFailed naming the step. The same log is what a
confirm window (`--confirm-timeout`, like `netplan try`) replays when no
confirmation comes in time, or on Ctrl-C.

Deleting something loses what the resource model does not hold (a private
key is only a fingerprint there): the executor's delete returns a Restore
that keeps what it needs in memory, never on disk or in logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from hercc.diagnostics import OperationError
from hercc.plan.diff import Plan
from hercc.resources.action import Action
from hercc.resources.model import Resource


@dataclass(frozen=True)
class Step:
    """One change: before is None for a create, after is None for a delete."""

    action: Action
    address: str
    before: Resource | None
    after: Resource | None
    changed: tuple[str, ...] = ()


Restore = Callable[[], None]


def steps_of(plan: Plan) -> list[Step]:
    """A plan's changes as apply steps (the changed attributes by name only)."""
    return [
        Step(c.action, c.address, c.before, c.after, tuple(n for n, _, _ in c.changed))
        for c in plan.changes
    ]


class Executor(Protocol):
    """The one boundary in front of the system (netlink, WireGuard, sysctl)."""

    def create(self, resource: Resource) -> None: ...

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None: ...

    def delete(self, resource: Resource) -> Restore:
        """Remove it; return how to put it back exactly (secrets kept in memory)."""
        ...


class ApplyFailed(OperationError):
    def __init__(self, step: Step, cause: BaseException, rollback_errors: list[str]) -> None:
        self.step = step
        self.cause = cause
        self.rollback_errors = rollback_errors
        state = (
            "the node is back as it was"
            if not rollback_errors
            else "rollback was incomplete: " + "; ".join(rollback_errors)
        )
        super().__init__(f"{step.action.value} {step.address} failed: {cause}; {state}")


@dataclass
class UndoLog:
    """Inverse operations of what an apply did, newest last."""

    entries: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, what: str, undo: Callable[[], None]) -> None:
        self.entries.append((what, undo))

    def replay(self) -> list[str]:
        """Undo everything, newest first; returns the errors (never stops half-way)."""
        errors: list[str] = []
        while self.entries:
            what, undo = self.entries.pop()
            try:
                undo()
            except Exception as exc:
                errors.append(f"undo {what}: {exc}")
        return errors


def _run(step: Step, executor: Executor, log: UndoLog) -> None:
    before, after = step.before, step.after
    if step.action is Action.CREATE:
        assert after is not None
        executor.create(after)
        log.push(step.address, lambda: _ignore(executor.delete(after)))
    elif step.action is Action.DELETE:
        assert before is not None
        restore = executor.delete(before)
        log.push(step.address, restore)
    elif step.action is Action.UPDATE:
        assert before is not None and after is not None
        executor.update(before, after, step.changed)
        log.push(step.address, lambda: executor.update(after, before, step.changed))
    else:  # replace: destroy, then create
        assert before is not None and after is not None
        restore = executor.delete(before)
        log.push(step.address, restore)
        executor.create(after)
        log.push(step.address, lambda: _ignore(executor.delete(after)))


def _ignore(_: Restore) -> None:
    return None


def apply_steps(
    steps: Sequence[Step],
    executor: Executor,
    progress: Callable[[Step], None] | None = None,
) -> UndoLog:
    """Run every step; on the first failure undo them all and raise ApplyFailed.

    Returns the undo log of a successful apply, for a confirm window.
    """
    log = UndoLog()
    for step in steps:
        try:
            _run(step, executor, log)
        except KeyboardInterrupt:
            log.replay()
            raise
        except Exception as exc:
            raise ApplyFailed(step, exc, log.replay()) from None
        if progress is not None:
            progress(step)
    return log


Clock = Callable[[], float]
Sleep = Callable[[float], None]


def confirm_window(
    log: UndoLog,
    timeout_s: float,
    confirmed: Callable[[], bool],
    healthy: Callable[[], bool],
    clock: Clock,
    sleep: Sleep,
    poll_s: float = 0.5,
) -> Literal["confirmed", "reverted-timeout", "reverted-unhealthy", "reverted-interrupt"]:
    """Keep the change only if confirmed in time; revert on timeout, lost peers or Ctrl-C.

    `healthy` checks reachability of the node's peers; once it has failed for
    the whole window it is no reason to wait any longer.
    """
    deadline = clock() + timeout_s
    try:
        while clock() < deadline:
            if confirmed():
                return "confirmed"
            sleep(min(poll_s, max(deadline - clock(), 0.0)))
    except KeyboardInterrupt:
        log.replay()
        return "reverted-interrupt"
    if confirmed():
        return "confirmed"
    reason: Literal["reverted-timeout", "reverted-unhealthy"] = (
        "reverted-timeout" if healthy() else "reverted-unhealthy"
    )
    log.replay()
    return reason
