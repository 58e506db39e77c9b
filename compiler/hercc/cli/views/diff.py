"""`hercc diff` as text (a plan per node in the `hercc plan` notation, then the total) and JSON."""

from __future__ import annotations

from hercc import ir
from hercc.cli.views.plan import plan_to_json, render_plan, summary_line
from hercc.plan.diff import Plan

JSON_FORMAT_VERSION = 1


def _totals(plans: list[tuple[str, Plan]]) -> tuple[int, int, int]:
    add = sum(p.add for _, p in plans)
    change = sum(p.change for _, p in plans)
    destroy = sum(p.destroy for _, p in plans)
    return add, change, destroy


def render_diff_text(plans: list[tuple[str, Plan]], show_unchanged: bool = False) -> str:
    parts = [
        f"# node {node}\n{render_plan(plan)}"
        for node, plan in plans
        if show_unchanged or not plan.no_changes
    ]
    changed = sum(not p.no_changes for _, p in plans)
    count = len(plans)
    noun = "node" if count == 1 else "nodes"
    if changed == 0:
        total = f"No differences on {count} {noun}."
    else:
        verb = "differs" if changed == 1 else "differ"
        total = f"{changed} of {count} {noun} {verb}. {summary_line(*_totals(plans))}"
    return "\n".join([*parts, total + "\n"])


def render_diff_json(plans: list[tuple[str, Plan]], show_unchanged: bool = False) -> str:
    add, change, destroy = _totals(plans)
    data = {
        "format_version": JSON_FORMAT_VERSION,
        "nodes": {
            node: plan_to_json(plan)
            for node, plan in plans
            if show_unchanged or not plan.no_changes
        },
        "summary": {
            "nodes": len(plans),
            "nodes_changed": sum(not p.no_changes for _, p in plans),
            "add": add,
            "change": change,
            "destroy": destroy,
        },
        "no_changes": all(p.no_changes for _, p in plans),
    }
    return ir.dumps(data)
