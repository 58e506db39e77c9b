"""Saved plans (`-out`): a plan applied later exactly as it was shown, or not at all.

The file is JSON in the ir.dumps layout, written atomically; it holds no secret:

    {
      "format_version": 2,
      "target": "node" | "gateway",                 (absent: "node", as before gateways)
      "node": "alpha",                              (the node's, or the gateway's, name)
      "spec": "examples/reference.herc" | null,
      "naming": {"netns_prefix": "herc-", ...},     (Naming's fields, or GatewayNaming's)
      "with_keys": true | false,                    (made with --keys)
      "live_fingerprint": "sha256:<64 hex>",
      "changes": [{"action", "address", "before", "after", "changed": [[name, old, new]],
                   "forces": [...], "replaced_with": address | null,
                   "as_written": [[name, text]]}],
      "desired": [Resource.to_data(), ...],         (sorted by address)
    }

`before` and `after` are full resources (Resource.to_data()), with the text
a resource installs (`content`: an nft table's rules, a gateway's haproxy.cfg),
so a saved plan applies exactly what was shown with no spec at hand. Secrets appear
only as fingerprints. `live_fingerprint` is the sha256 of the canonical JSON
of the live state the plan was made against; `check_fresh` refuses a plan
whose node has changed since (StalePlanError). `check_made_like` refuses one
applied under other names or without the keys it was made with, and says which
(PlanMismatch).

A saved plan is known by its content, whatever its file name (`sniff_plan`):
a JSON object with "format_version" and "live_fingerprint". Anything else
(a .herc or .herc.yaml spec) is not a plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.plan.diff import Change, Plan
from hercc.resources.action import Action
from hercc.resources.gateway_naming import GatewayNaming
from hercc.resources.model import Resource, State, state_of
from hercc.resources.naming import Naming

FORMAT_VERSION = 2
_MARKERS = ("format_version", "live_fingerprint")  # the keys that make a JSON object a plan


class StalePlanError(OperationError):
    """The live state changed since the saved plan was made: plan again."""


class PlanMismatch(OperationError):
    """The saved plan was made under other names or keys than it is applied with."""


@dataclass(frozen=True)
class SavedPlan:
    node: str  # the target's name: a node's, or a gateway's
    spec: str | None
    plan: Plan
    desired: State
    live_fingerprint: str
    naming: Mapping[str, Any]
    with_keys: bool
    target: str = "node"  # or "gateway"


def naming_data(naming: Naming | GatewayNaming) -> dict[str, Any]:
    """A naming's fields as JSON data (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(naming).items()}


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
        "as_written": [[name, text] for name, text in change.as_written],
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
        as_written=tuple((name, text) for name, text in data["as_written"]),
    )


def plan_to_data(
    plan: Plan,
    node: str,
    live: State,
    desired: State,
    spec: str | None = None,
    *,
    naming: Naming | GatewayNaming | None = None,
    with_keys: bool = False,
    target: str = "node",
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "target": target,
        "node": node,
        "spec": spec,
        "naming": naming_data(naming if naming is not None else Naming()),
        "with_keys": with_keys,
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
            naming=dict(data["naming"]),
            with_keys=bool(data["with_keys"]),
            target=str(data.get("target", "node")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OperationError(f"{where}: malformed saved plan ({exc})") from None


def save_plan(
    plan: Plan,
    node: str,
    live: State,
    desired: State,
    path: str,
    spec: str | None = None,
    *,
    naming: Naming | GatewayNaming | None = None,
    with_keys: bool = False,
    target: str = "node",
) -> None:
    """Write the plan atomically (readers see the old file or the new one)."""
    from hercc.sysio.files import write_atomic

    data = plan_to_data(
        plan,
        node,
        live,
        desired,
        spec,
        naming=naming,
        with_keys=with_keys,
        target=target,
    )
    write_atomic(path, ir.dumps(data))


def sniff_plan(path: str) -> SavedPlan | None:
    """The saved plan at `path`, or None when the file is not one (or cannot be read).

    OperationError for a plan of another format version, or a malformed one.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device: never read here
            return None
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if data.lstrip()[:1] != b"{":
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not all(k in parsed for k in _MARKERS):
        return None
    return plan_from_data(parsed, path)


def _netns_prefix_option(naming: Mapping[str, Any]) -> str | None:
    """The --netns-prefix that gives `naming`'s namespace prefix, None if none does."""
    base = Naming().netns_prefix
    prefix = naming.get("netns_prefix")
    if isinstance(prefix, str) and prefix.endswith(base):
        return prefix[: -len(base)]
    return None


def check_made_like(saved: SavedPlan, naming: Naming | GatewayNaming, *, with_keys: bool) -> None:
    """PlanMismatch, naming what differs, unless `saved` is applied as it was made.

    A plan made with keys needs them (it may set secrets); one made without
    them may be applied with them.
    """
    now = naming_data(naming)
    if saved.naming != now:
        was, is_ = _netns_prefix_option(saved.naming), _netns_prefix_option(now)
        if was is not None and is_ is not None and was != is_:
            raise PlanMismatch(
                f"this plan was made with --netns-prefix {was!r}, not {is_!r}: apply it "
                f"with --netns-prefix {was!r}, or plan again"
            )
        diffs = ", ".join(
            f"{name} {saved.naming.get(name)!r}, not {value!r}"
            for name, value in sorted(now.items())
            if saved.naming.get(name) != value
        )
        raise PlanMismatch(f"this plan was made under other names ({diffs}); plan again")
    if saved.with_keys and not with_keys:
        raise PlanMismatch(
            "this plan was made with --keys: apply it with --keys DIR, the keys directory "
            "it was made with"
        )


def check_fresh(saved: SavedPlan, live_now: State) -> None:
    """Raise StalePlanError unless the live state is the one the plan was made against."""
    now = live_fingerprint(live_now)
    if now != saved.live_fingerprint:
        raise StalePlanError(
            f"{saved.target} {saved.node} changed since this plan was made "
            f"(live state {now[:19]}, plan made against {saved.live_fingerprint[:19]}); "
            "run the plan again"
        )
