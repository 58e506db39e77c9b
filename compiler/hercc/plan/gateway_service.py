"""The plan of one gateway against its live system, and its apply: for the CLI and the lab.

A gateway is a node with other desired state (plan/gateway_desired.py): its
WireGuard interface, its tunnel addresses, a peer per node that tunnels to
it, and its HAProxy. It is planned and applied through the node service's
seams (plan/node_service.py: `plan_against`, `apply_plan` and its
SystemExecutor), so the differ, the conflicts, the secrets rules and the
transactional apply are the nodes'.

The API (what `hercc plan|apply --gateway` and the lab call):

    ctx = GatewayContext.of(naming, keys, state_dir, live_system())
    desired = desired_of(model, ctx)                 # State (the haproxy resource holds its text)
    planned = plan_gateway(ctx, desired)             # reads only; NameConflict
    apply_gateway(ctx, planned.plan, progress=...)   # ApplyFailed, rolled back

`naming` (resources/gateway_naming.GatewayNaming) says where the gateway
lives: its namespace (HOST_NETNS on a real gateway; the lab's own one,
which the lab makes with the gateway's public addresses before it applies),
its interface name and HAProxy's runtime directory. `keys` looks the
gateway's private key up as "gateway:<gw>" (gateway_desired.GatewayKeys
reads it from a keys directory; the lab passes its own KeyLookup); None
leaves the key as it is. `state_dir` holds the gateway's records under the
owner name "gateway:<gw>" (its wireguard-go PID and log); its interface
carries the alias `hercules:gateway:<gw>`. wireguard-go runs in the
gateway's namespace, where its UDP port must be. `plan_gateway(ctx, {})`
is the plan that removes everything of the gateway (its HAProxy stopped,
its interface gone).

The live side (`read_gateway`): the gateway's namespace read like a node's
(hercc.state: the interface, addresses and peers that carry its alias;
every other name there is foreign), plus its HAProxy
(state/haproxy.HaproxyReader, found by its PID file). Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.plan import node_service
from hercc.plan.apply import Step, UndoLog
from hercc.plan.desired import KeyLookup
from hercc.plan.diff import Plan
from hercc.plan.executor.haproxy import HaproxyExecutor, HaproxySystem, LinuxHaproxySystem
from hercc.plan.gateway_desired import gateway_desired
from hercc.plan.node_service import LiveSystem, NodeContext, Planned
from hercc.resources.gateway_naming import GatewayNaming, netns_arg
from hercc.resources.model import State
from hercc.resources.naming import Naming
from hercc.state.haproxy import HaproxyReader
from hercc.state.netlink import NETNS_DIR

__all__ = [
    "GatewayContext",
    "GatewayHaproxy",
    "MissingNamespace",
    "apply_gateway",
    "desired_of",
    "plan_gateway",
    "read_gateway",
]


@dataclass(frozen=True)
class GatewayHaproxy:
    """How a gateway's HAProxy is read and changed (tests pass fakes)."""

    reader: HaproxyReader = field(default_factory=HaproxyReader)
    system: HaproxySystem = field(default_factory=LinuxHaproxySystem)


@dataclass(frozen=True)
class GatewayContext:
    """A gateway under its names, keys and records; `host` is it as the node service sees it."""

    naming: GatewayNaming
    host: NodeContext
    haproxy: GatewayHaproxy

    @classmethod
    def of(
        cls,
        naming: GatewayNaming,
        keys: KeyLookup | None,
        state_dir: str | Path,
        system: LiveSystem,
        haproxy: GatewayHaproxy | None = None,
    ) -> GatewayContext:
        host = NodeContext.of(naming.owner, Naming(), keys, state_dir, system)
        return cls(naming, host, haproxy if haproxy is not None else GatewayHaproxy())

    @property
    def gateway(self) -> str:
        return self.naming.gateway


def desired_of(model: ir.IR, ctx: GatewayContext) -> State:
    """What `model` asks of the gateway, under the context's names and keys."""
    return gateway_desired(model, ctx.naming, ctx.host.keys)


def read_gateway(ctx: GatewayContext) -> tuple[State, frozenset[str]]:
    """The gateway's live state and the foreign names in its namespace."""
    n = ctx.naming
    live = ctx.host.system.reader.read(n.owner, (), also=[n.netns], sysctls={})
    state = dict(live.state)
    proxy = ctx.haproxy.reader.read(n.netns, n.gateway, n.haproxy)
    if proxy is not None:
        state[proxy.address] = proxy
    return state, frozenset(live.foreign)


class MissingNamespace(OperationError):
    """The gateway's named namespace does not exist: whoever runs the gateway makes it."""


def plan_gateway(ctx: GatewayContext, desired: State) -> Planned:
    """The plan from the gateway's live state to `desired`. Reads, never changes.

    NameConflict when it would create a name that exists and is not ours;
    MissingNamespace when the gateway is to live in a named namespace that
    does not exist (the gateway's apply never makes it).
    """
    ns = ctx.naming.netns
    if desired and netns_arg(ns) is not None and not (NETNS_DIR / ns).exists():
        raise MissingNamespace(
            f"gateway {ctx.gateway}: its namespace {ns} does not exist; it is made by "
            "whoever runs the gateway, with the gateway's public addresses (the lab does)"
        )
    live, foreign = read_gateway(ctx)
    return node_service.plan_against(ctx.host, desired, live, foreign)


def apply_gateway(
    ctx: GatewayContext,
    plan: Plan,
    *,
    progress: Callable[[Step], None] | None = None,
) -> UndoLog:
    """Carry `plan` out on the gateway (its haproxy resource brings its text, `content`).

    Transactional like a node's: a failure is rolled back and raised as
    plan.apply.ApplyFailed.
    """
    n = ctx.naming
    haproxy = HaproxyExecutor(ctx.haproxy.system, n.haproxy, n.netns)
    return node_service.apply_plan(
        ctx.host, plan, netns_arg(n.netns), progress=progress, haproxy=haproxy
    )
