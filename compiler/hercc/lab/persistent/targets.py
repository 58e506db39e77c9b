"""`hercc lab exec`: the namespace behind a lab's name, and a command run in it.

The names are those the state file records (`LabState.targets`): a node
(its underlay namespace), node@network, a workload, a gateway, router:NODE,
underlay, internet, and node:NAME, workload:NAME or gateway:NAME where a
node, a workload and a gateway share a name (gateways have a namespace of
names of their own, so `gw1` may be both a node and a gateway).
Kept apart: it is neither lifecycle nor a check.
"""

from __future__ import annotations

from collections.abc import Sequence

from hercc.diagnostics import LabError
from hercc.lab.persistent.statefile import LabState
from hercc.lab.underlay import netns_exists
from hercc.sysio.process import run_attached


class NoSuchTarget(LabError):
    """exec named no node, node@network or workload of the lab."""

    def __init__(self, message: str, choices: Sequence[str]) -> None:
        super().__init__(message)
        self.choices = tuple(choices)


def target_namespace(state: LabState, target: str) -> str:
    """The namespace of a node (underlay), node@network, a workload, a gateway, router:NODE,
    underlay or internet."""
    if target in state.targets:
        return state.targets[target]
    kinds = [k for k in ("node", "workload", "gateway") if f"{k}:{target}" in state.targets]
    if ":" not in target and kinds:
        say = " or ".join(f"{k}:{target}" for k in kinds)
        raise NoSuchTarget(
            f"{target!r} is a {' and a '.join(kinds)}: say {say}", list(state.targets)
        )
    raise NoSuchTarget(
        f"lab {state.name!r} has no node, workload or gateway {target!r}", list(state.targets)
    )


def exec_in(state: LabState, target: str, argv: Sequence[str]) -> int:
    """Run argv in the target's namespace with this process's stdio; its exit status."""
    ns = target_namespace(state, target)
    if not netns_exists(ns):
        raise LabError(f"namespace {ns} of {target!r} is gone")
    code = run_attached(argv, netns=ns, error=LabError)
    return code if code >= 0 else 128 - code
