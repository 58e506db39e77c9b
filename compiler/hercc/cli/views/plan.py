"""Plans as Terraform-style text and as JSON. Plain, deterministic, no secrets.

Text: one block per change, its header the action symbol (Action.symbol,
right-aligned: `  +` create, `  ~` update, `  -` delete, `-/+` replace) and the
resource address, followed by `# <label>` when the resource has a label (a
peer's node name), then its attributes, sorted, "=" aligned: all of them for
a create or a delete, the changed ones for an update or a replace (the
forcing one marked `# forces replacement`). A value the spec wrote in another
form (a host name endpoint, compared resolved) prints as written, then as
compared: `"vpn.example.com:51820" (192.0.2.7:51820)`. A sensitive value prints as
`(sensitive)`; a changed one as one word, as Terraform does: `(sensitive,
added)` from none, `(sensitive, removed)` to none, else `(sensitive)`.
The text ends with the counts line.

JSON (`plan_to_json`): {"format_version", "resource_changes": [{address,
kind, id, label (or null), action, actions (Terraform's: ["delete", "create"] for a replace),
before, after (attributes, sensitive ones null), changed (attribute names),
sensitive, replace_paths, replaced_with, as_written ({attribute: the spec's
spelling} of values compared resolved)}], "summary": {add, change, destroy},
"no_changes"}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hercc.plan.diff import Change, Plan
from hercc.resources.action import Action

JSON_FORMAT_VERSION = 1
SENSITIVE = "(sensitive)"
NO_CHANGES = "No changes. Your node matches the spec."
NO_CHANGES_GATEWAY = "No changes. Your gateway matches the spec."

_INDENT = " " * 6
_SYMBOL_WIDTH = 3  # "-/+"


def value_text(value: Any) -> str:
    """JSON-like: strings quoted, null/true/false, lists on one line."""
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _written(value: Any, written: str | None) -> str:
    """A value, after the spec's spelling when it was resolved: `"name:port" (ip:port)`."""
    if written is None or written == value:
        return value_text(value)
    return f"{value_text(written)} ({value})"


def _shown(name: str, value: Any, sensitive: frozenset[str], written: str | None) -> str:
    return SENSITIVE if name in sensitive else _written(value, written)


def _changed_row(
    name: str, old: Any, new: Any, sensitive: frozenset[str], written: str | None
) -> tuple[str, str, str | None]:
    """One attribute's change; a secret's as one word, never two hidden values."""
    if name not in sensitive:
        return (name, value_text(old), _written(new, written))
    if old is None:
        return (name, "(sensitive, added)", None)
    if new is None:
        return (name, "(sensitive, removed)", None)
    return (name, SENSITIVE, None)


def _attr_lines(
    symbol: str, rows: list[tuple[str, str, str | None]], notes: Mapping[str, str]
) -> list[str]:
    """rows: (name, old text, new text or None when there is one side only)."""
    width = max((len(name) for name, _, _ in rows), default=0)
    out = []
    for name, first, second in rows:
        text = first if second is None else f"{first} -> {second}"
        note = f" # {notes[name]}" if name in notes else ""
        out.append(f"{_INDENT}{symbol} {name.ljust(width)} = {text}{note}")
    return out


def _label(change: Change) -> str | None:
    for r in (change.after, change.before):
        if r is not None and r.label is not None:
            return r.label
    return None


def render_change(change: Change) -> str:
    r = change.resource
    label = _label(change)
    header = f"{change.action.symbol.rjust(_SYMBOL_WIDTH)} {change.address}"
    lines = [header + (f" # {label}" if label else "")]
    sens = change.sensitive
    written = dict(change.as_written)
    if change.action in (Action.CREATE, Action.DELETE):
        rows: list[tuple[str, str, str | None]] = [
            (name, _shown(name, r.attrs[name], sens, written.get(name)), None)
            for name in sorted(r.attrs)
        ]
        lines += _attr_lines(change.action.symbol, rows, {})
    else:
        rows = [
            _changed_row(name, old, new, sens, written.get(name))
            for name, old, new in change.changed
        ]
        notes = {name: "forces replacement" for name in change.forces}
        lines += _attr_lines(Action.UPDATE.symbol, rows, notes)
        if change.replaced_with is not None:
            lines.append(f"{_INDENT}  # replaced with {change.replaced_with}")
        after = change.after.attrs if change.after is not None else {}
        hidden = len(after) - len(change.changed)
        if hidden > 0:
            plural = "s" if hidden != 1 else ""
            lines.append(f"{_INDENT}  # ({hidden} unchanged attribute{plural} hidden)")
    return "\n".join(lines) + "\n"


def render_changes(plan: Plan) -> str:
    """The change blocks, separated by blank lines; "" for an empty plan."""
    return "\n".join(render_change(c) for c in plan.changes)


def summary_line(add: int, change: int, destroy: int) -> str:
    return f"Plan: {add} to add, {change} to change, {destroy} to destroy."


def render_plan(plan: Plan, *, gateway: bool = False) -> str:
    """The whole plan of a node (or a gateway) as text, ending with the counts line
    (or "No changes...")."""
    if plan.no_changes:
        return (NO_CHANGES_GATEWAY if gateway else NO_CHANGES) + "\n"
    return render_changes(plan) + "\n" + summary_line(*plan.counts()) + "\n"


def _public(attrs: Mapping[str, Any] | None, sensitive: frozenset[str]) -> dict[str, Any] | None:
    if attrs is None:
        return None
    out: dict[str, Any] = {}
    for name in sorted(attrs):
        value = attrs[name]
        out[name] = None if name in sensitive else json.loads(value_text(value))
    return out


def change_to_json(change: Change) -> dict[str, Any]:
    r = change.resource
    sens = change.sensitive
    actions = [change.action]
    if change.action is Action.REPLACE:  # Terraform's: a replace is a delete and a create
        actions = [Action.DELETE, Action.CREATE]
    return {
        "address": change.address,
        "kind": r.kind,
        "id": r.id,
        "label": _label(change),
        "action": change.action.value,
        "actions": [a.value for a in actions],
        "before": _public(change.before.attrs if change.before else None, sens),
        "after": _public(change.after.attrs if change.after else None, sens),
        "changed": [name for name, _, _ in change.changed],
        "sensitive": sorted(sens),
        "replace_paths": list(change.forces),
        "replaced_with": change.replaced_with,
        "as_written": dict(change.as_written),
    }


def plan_to_json(plan: Plan) -> dict[str, Any]:
    add, change, destroy = plan.counts()
    return {
        "format_version": JSON_FORMAT_VERSION,
        "resource_changes": [change_to_json(c) for c in plan.changes],
        "summary": {"add": add, "change": change, "destroy": destroy},
        "no_changes": plan.no_changes,
    }
