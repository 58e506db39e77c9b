"""The confirm window of `hercc apply --confirm-timeout`, like `netplan try`.

The apply (plan/node_service.apply_plan) has happened; the change stays only
if `hercc apply --confirm --node N` (`confirm`) writes STATE_DIR/N.confirm
within the window. Without it, the undo log is replayed when the window ends
(the result says whether a peer with an endpoint had answered since the apply
began), or at once on Ctrl-C (plan/apply.confirm_window).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from hercc.diagnostics import OperationError
from hercc.plan.apply import UndoLog, confirm_window
from hercc.plan.diff import Plan
from hercc.plan.node_service import NodeContext
from hercc.resources.ids import PeerId
from hercc.state import OwnedRegistry

ConfirmResult = Literal["confirmed", "reverted-timeout", "reverted-unhealthy", "reverted-interrupt"]


def confirm_path(state_dir: str | Path, node: str) -> str:
    OwnedRegistry(node, state_dir)  # validates the node name
    return os.path.join(state_dir, f"{node}.confirm")


def confirm(state_dir: str | Path, node: str) -> None:
    """Confirm the change an apply with a confirm window is waiting on (`apply --confirm`)."""
    path = confirm_path(state_dir, node)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"{time.time():.3f}\n")
    except OSError as exc:
        raise OperationError(f"{path}: cannot write: {exc.strerror or exc}") from None


def clear_confirmation(ctx: NodeContext) -> None:
    """Forget an old confirmation: the window that opens next waits for a new one."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(confirm_path(ctx.state_dir, ctx.node))


def await_confirmation(
    ctx: NodeContext, plan: Plan, log: UndoLog, timeout_s: float, since: float
) -> ConfirmResult:
    """Keep the applied `plan` only if confirmed within `timeout_s` (plan/apply.confirm_window).

    `since`: when the apply began (time.time()), for the peers' handshakes.
    """
    path = confirm_path(ctx.state_dir, ctx.node)
    try:
        return confirm_window(
            log,
            timeout_s,
            lambda: os.path.exists(path),
            lambda: _healthy(ctx, plan, since),
            time.monotonic,
            time.sleep,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _healthy(ctx: NodeContext, plan: Plan, since: float) -> bool:
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
            device = ctx.system.wireguard.read(ifname, netns=where["netns"])
        except OperationError:
            continue
        if any(p.last_handshake and p.last_handshake >= since for p in device.peers.values()):
            return True
    return False
