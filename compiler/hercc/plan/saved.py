"""Saved plans (`-out`): a plan applied later exactly as it was shown, or not at all.

The file is JSON in the ir.dumps layout, written atomically; it holds no secret:

    {
      "format_version": 1,
      "node": "alpha",
      "spec": "examples/reference.herc" | null,
      "live_fingerprint": "sha256:<64 hex>",
      "changes": [{"action", "address", "before", "after", "changed": [[name, old, new]],
                   "forces": [...], "replaced_with": address | null}],
      "desired": [Resource.to_data(), ...]          (sorted by address)
    }

`before` and `after` are full resources (Resource.to_data()). Secrets appear
only as fingerprints. `live_fingerprint` is the sha256 of the canonical JSON
of the live state the plan was made against; `check_fresh` refuses a plan
whose node has changed since (StalePlanError).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.plan.diff import Change, Plan
from hercc.resources.action import Action
from hercc.resources.model import Resource, State, state_of

FORMAT_VERSION = 1


class StalePlanError(OperationError):
    """The live state changed since the saved plan was made: plan again."""


@dataclass(frozen=True)
class SavedPlan:
    node: str
    spec: str | None
    plan: Plan
    desired: State
    live_fingerprint: str


def _canonical(state: State) -> str:
    data = [state[address].to_data() for address in sorted(state)]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def live_fingerprint(state: State) -> str:
    """sha256 over the canonical JSON of a state: equal states, equal fingerprints."""
    return "sha256:" + hashlib.sha256(_canonical(state).encode("utf-8")).hexdigest()


def _resource(data: Any) -> Resource | None:
    return None if data is None else Resource.from_data(data)


def change_to_data(change: Change) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "address": change.address,
        "before": change.before.to_data() if change.before is not None else None,
        "after": change.after.to_data() if change.after is not None else None,
        "changed": [[name, old, new] for name, old, new in change.changed],
        "forces": list(change.forces),
        "replaced_with": change.replaced_with,
    }


def change_from_data(data: Any) -> Change:
    try:
        action = Action(data["action"])
    except ValueError:
        raise ValueError(f"unknown action {data['action']!r}") from None
    return Change(
        action=action,
        address=data["address"],
        before=_resource(data["before"]),
        after=_resource(data["after"]),
        changed=tuple((name, old, new) for name, old, new in data["changed"]),
        forces=tuple(data["forces"]),
        replaced_with=data["replaced_with"],
    )


def plan_to_data(
    plan: Plan, node: str, live: State, desired: State, spec: str | None = None
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "node": node,
        "spec": spec,
        "live_fingerprint": live_fingerprint(live),
        "changes": [change_to_data(c) for c in plan.changes],
        "desired": [desired[address].to_data() for address in sorted(desired)],
    }


def plan_from_data(data: Any, where: str = "saved plan") -> SavedPlan:
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise OperationError(f"{where}: not a saved plan of format version {FORMAT_VERSION}")
    try:
        return SavedPlan(
            node=str(data["node"]),
            spec=data["spec"],
            plan=Plan(tuple(change_from_data(c) for c in data["changes"])),
            desired=state_of([Resource.from_data(r) for r in data["desired"]]),
            live_fingerprint=str(data["live_fingerprint"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OperationError(f"{where}: malformed saved plan ({exc})") from None


def save_plan(
    plan: Plan, node: str, live: State, desired: State, path: str, spec: str | None = None
) -> None:
    """Write the plan atomically (readers see the old file or the new one)."""
    from hercc.sysio.files import write_atomic

    try:
        write_atomic(path, ir.dumps(plan_to_data(plan, node, live, desired, spec)))
    except OSError as exc:
        raise OperationError(f"{path}: cannot write the plan: {exc.strerror}") from None


def load_plan(path: str) -> SavedPlan:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise OperationError(f"{path}: cannot read the plan: {exc}") from None
    return plan_from_data(data, path)


def check_fresh(saved: SavedPlan, live_now: State) -> None:
    """Raise StalePlanError unless the live state is the one the plan was made against."""
    now = live_fingerprint(live_now)
    if now != saved.live_fingerprint:
        raise StalePlanError(
            f"node {saved.node} changed since this plan was made "
            f"(live state {now[:19]}, plan made against {saved.live_fingerprint[:19]}); "
            "run the plan again"
        )
