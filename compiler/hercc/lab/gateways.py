"""The lab's gateways, planned and applied with the code of `hercc plan|apply --gateway`.

Each gateway runs in its own namespace (<p>-g-<gateway>, made with its
public addresses by the lab's underlay, hercc.lab.public) under a
GatewayNaming of the lab's: that namespace, the lab's WireGuard name for it
(<p>g<i>, unique on the machine) and HAProxy's runtime directory under the
lab's directory (<lab>/gateways/<gateway>/: configuration, PID file, master
and admin sockets, log). The gateway service (plan/gateway_service.py)
plans it against what runs and applies it: wireguard-go in the gateway's
namespace (its records, as the executor keeps them, in the lab's node
directory under the owner `gateway:<gateway>`), the tunnel addresses and a
peer per node, and HAProxy (master-worker).

`plan` reads only (`lab plan` shows it); `apply` carries it out and
returns what runs as Daemons (HAProxy's master by its PID file,
wireguard-go by the executor's record), so that `lab down` stops them by
PID like the lab's other processes. `stop` kills them (a gateway lost); a
new plan and apply bring a gateway back from whatever is left.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab.daemons import Daemon, stop_daemon
from hercc.lab.public import GatewayHost
from hercc.plan.apply import ApplyFailed
from hercc.plan.desired import KeyLookup
from hercc.plan.diff import Plan
from hercc.plan.executor import wireguard_go_pid_file
from hercc.plan.gateway_service import GatewayContext, apply_gateway, desired_of, plan_gateway
from hercc.plan.node_service import NameConflict, live_system
from hercc.resources.gateway_naming import GatewayNaming
from hercc.sysio.procfs import proc_start_time, read_pid_file

WG_RUN_DIR = Path("/var/run/wireguard")


def lab_gateway_naming(g: GatewayHost, workdir: Path) -> GatewayNaming:
    """The names of gateway `g` in the lab whose working directory is `workdir`."""
    return GatewayNaming(g.gateway, g.ns, g.wg_if, workdir / "gateways" / g.gateway)


def _daemon(role: str, g: GatewayHost, pid: int | None, log: Path) -> Daemon:
    start = None if pid is None else proc_start_time(pid)
    if pid is None or start is None:
        raise LabError(f"gateway {g.gateway}: its {role} is not running after apply")
    return Daemon(role, g.gateway, g.ns, pid, start, str(log))


@dataclass(frozen=True)
class GatewayPlan:
    """A gateway's plan from what runs to what the spec asks, and what applying it needs."""

    host: GatewayHost
    context: GatewayContext
    plan: Plan

    @property
    def gateway(self) -> str:
        return self.host.gateway


def plan(model: ir.IR, g: GatewayHost, workdir: Path, keys: KeyLookup) -> GatewayPlan:
    """Gateway `g` of `model` planned against what runs of it. Reads only; LabError when a
    name it would make is taken."""
    naming = lab_gateway_naming(g, workdir)
    ctx = GatewayContext.of(naming, keys, workdir / "nodes", live_system())
    desired = desired_of(model, ctx)
    try:
        planned = plan_gateway(ctx, desired)
    except NameConflict as exc:
        raise LabError(f"gateway {g.gateway}: {exc}") from None
    return GatewayPlan(g, ctx, planned.plan)


def apply(p: GatewayPlan) -> list[Daemon]:
    """Carry `p` out; the gateway's HAProxy and wireguard-go as they run after it.

    LabError when the apply fails (it is rolled back).
    """
    g, ctx = p.host, p.context
    if not p.plan.no_changes:
        try:
            apply_gateway(ctx, p.plan)
        except ApplyFailed as exc:
            raise LabError(
                f"gateway {g.gateway}: apply failed and was rolled back: {exc}"
            ) from None
    naming, state_dir = ctx.naming, Path(ctx.host.state_dir)
    paths = naming.haproxy
    proxy = read_pid_file_int(paths.pid_file)
    tunnel = read_pid_file(wireguard_go_pid_file(state_dir, naming.owner)).get(g.wg_if)
    return [
        _daemon("haproxy", g, proxy, paths.log),
        _daemon("wireguard-go", g, tunnel, state_dir / f"{naming.owner}.{g.wg_if}.log"),
    ]


def read_pid_file_int(path: Path) -> int | None:
    """The PID in a plain PID file (HAProxy's `-p`), None if missing or unreadable."""
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(g: GatewayHost, daemons: list[Daemon]) -> list[Daemon]:
    """Kill gateway `g`'s recorded processes (a lost gateway); the daemons that remain."""
    mine = [d for d in daemons if d.name == g.gateway and d.role in ("haproxy", "wireguard-go")]
    for d in mine:
        if not stop_daemon(d):
            raise LabError(f"gateway {g.gateway}: {d.role} (pid {d.pid}) did not exit")
    with contextlib.suppress(FileNotFoundError):
        (WG_RUN_DIR / f"{g.wg_if}.sock").unlink()
    return [d for d in daemons if d not in mine]
