"""A lab as text and JSON: the reachability matrix of `lab check`, `lab status`, `lab plan`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hercc.cli.views.plan import plan_to_json, render_plan
from hercc.resources.action import Action

if TYPE_CHECKING:  # the lab is imported when a lab command runs
    from hercc.lab.overlay import HostChange, LabPlan, NodePlan
    from hercc.lab.persistent import LabState
    from hercc.lab.persistent.probes import CollectorProbe, Probe, PublicProbe
    from hercc.lab.persistent.status import LabStatus


def check_json(
    name: str,
    results: Sequence[Probe],
    public: Sequence[PublicProbe] = (),
    collectors: Sequence[CollectorProbe] = (),
) -> str:
    data = {
        "ok": all(r.ok for r in results)
        and all(p.ok for p in public)
        and all(c.ok for c in collectors),
        "lab": name,
        "results": [
            {
                "from": r.src,
                "to": r.dst,
                "address": r.address,
                "family": f"ipv{r.family}",
                "network": r.network,
                "ok": r.ok,
            }
            for r in results
        ],
        "public": [
            {
                "kind": p.path.kind,
                "name": p.path.name,
                "port": p.path.port,
                "gateway": p.path.gateway or None,
                "address": p.path.address or None,
                "answer": p.answer,
                "ok": p.ok,
            }
            for p in public
        ],
        "collectors": [
            {
                "collector": c.collector.name,
                "namespace": c.collector.ns,
                "running": c.running,
                "listening": c.listening,
                "unreachable_from": list(c.unreachable),
                "ok": c.ok,
            }
            for c in collectors
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def render_collectors(collectors: Sequence[CollectorProbe]) -> str:
    """One line per NetFlow collector: its nfcapd, its port, the nodes that reach it."""
    lines = []
    for c in collectors:
        what = [
            "nfcapd running" if c.running else "nfcapd NOT RUNNING",
            "listening" if c.listening else "NOT LISTENING",
            f"unreachable from {', '.join(c.unreachable)}"
            if c.unreachable
            else "every node reaches it",
        ]
        lines.append(
            f"  {'ok  ' if c.ok else 'FAIL'} collector {c.collector.name}: {'; '.join(what)}"
        )
    if not lines:
        return ""
    good = sum(c.ok for c in collectors)
    return (
        "\n".join(["netflow collectors:", *lines, f"{good}/{len(collectors)} collectors ok"]) + "\n"
    )


def render_public(public: Sequence[PublicProbe]) -> str:
    """One line per public path: what was asked of whom, and who answered."""
    if not public:
        return ""
    lines = ["public paths, from the internet namespace:"]
    for p in public:
        path = p.path
        if path.kind == "dns":
            what = f"dns    {path.name}: one record per gateway"
        else:
            where = f"[{path.address}]" if ":" in path.address else path.address
            what = f"{path.kind:<6} {path.name} via {path.gateway} ({where}:{path.port})"
        lines.append(f"  {'ok  ' if p.ok else 'FAIL'} {what} -> {p.answer}")
    good = sum(p.ok for p in public)
    lines.append(f"{good}/{len(public)} public paths answered")
    return "\n".join(lines) + "\n"


def render_matrix(state: LabState, results: Sequence[Probe]) -> str:
    """Rows ping columns. ok: every address answers; --: none; -4/-6: that family fails."""
    ordered = sorted(state.endpoints, key=lambda e: (e.network, e.kind != "node"))
    names = [e.name for e in ordered]  # by network, nodes first
    net_of = {e.name: e.network for e in state.endpoints}
    cells: dict[tuple[str, str], list[Probe]] = {}
    for r in results:
        cells.setdefault((r.src, r.dst), []).append(r)
    width = max((len(n) for n in names), default=4) + 5
    col = max(3, len(str(len(names))) + 1)
    lines = [
        f"lab {state.name!r}: the row pings every overlay address of the column",
        " " * width + "".join(str(i + 1).rjust(col) for i in range(len(names))),
    ]
    for i, src in enumerate(names):
        row = f"{i + 1:>3} {src}".ljust(width)
        for dst in names:
            if net_of[src] != net_of[dst]:
                mark = "·"
            else:
                rs = cells.get((src, dst), [])
                failed = {r.family for r in rs if not r.ok}
                if not failed:
                    mark = "ok"
                elif len(failed) == len({r.family for r in rs}):
                    mark = "--"
                else:
                    mark = "".join(f"-{f}" for f in sorted(failed))
            row += mark.rjust(col)
        lines.append(row.rstrip())
    lines.append(
        "ok: every address answers; --: none does; -4/-6: IPv4/IPv6 fails; ·: other network"
    )
    bad = [r for r in results if not r.ok]
    for r in bad:
        lines.append(f"FAIL {r.src} -> {r.dst} {r.address} (IPv{r.family}, {r.network})")
    v4 = sum(1 for r in results if r.family == 4)
    lines.append(
        f"{len(results) - len(bad)}/{len(results)} pings answered "
        f"({v4} IPv4, {len(results) - v4} IPv6)"
    )
    return "\n".join(lines) + "\n"


def render_status(st: LabStatus) -> str:
    """One lab: its state, its namespaces, and each wireguard-go with its handshakes."""
    s = st.state
    text = (
        f"lab {s.name!r}: {s.status}{'' if st.healthy else ', degraded'}; "
        f"spec {s.spec}; since {s.created}; prefix {s.prefix}\n"
        f"  namespaces: {len(st.namespaces_present)}/{len(s.namespaces)} present"
    )
    gone = sorted(set(s.namespaces) - set(st.namespaces_present))
    text += f" (gone: {', '.join(gone)})\n" if gone else "\n"
    for i in st.interfaces:
        f = i.iface
        pid = f"pid {f.pid} {'alive' if i.alive else 'DEAD'}" if f.pid else "no pid"
        if i.peers is None:
            hs = "interface unreadable"
        else:
            age = "never" if i.latest_age is None else f"{i.latest_age:.0f} s ago"
            hs = f"{i.handshaken}/{i.peers} peers handshaken, latest {age}"
        what = f"{f.node}@{f.network}" + (f" tunnel to {f.gateway}" if f.gateway else "")
        text += f"  {f.name:<15} {what}: {pid}; {hs}\n"
    for d, ok in st.daemons:
        text += f"  {d.role:<15} {d.name}: pid {d.pid} {'alive' if ok else 'DEAD'}, in {d.ns}\n"
    for line in s.left_out:
        text += f"  left out       {line}\n"
    return text


def render_broken(name: str, why: str) -> str:
    """A lab whose state cannot be read."""
    return f"lab {name!r}: broken: {why}\n  `hercc lab down --name {name}` removes it\n"


def _host_text(c: HostChange) -> str:
    h = c.after if c.after is not None else c.before
    assert h is not None
    where = f"public {h.public_ip}" if h.kind == "public" else f"nat, behind {h.router_ns}"
    line = f"{c.action.symbol:>3} node {c.node} ({where}; namespace {h.ns}, bridge port {h.port})"
    if c.forces:
        line += f"  # forces replacement: {', '.join(c.forces)}"
    return line


def _underlay_text(planned: LabPlan) -> str:
    """`# underlay`: the nodes that come, go or are re-created, rewritten drop rules, and the
    NetFlow collectors that come or go."""
    lines = [_host_text(c) for c in planned.hosts]
    lines += [
        f"{action.symbol:>3} netflow collector {c.name} (namespace {c.ns}, nfcapd)"
        for action, c in planned.collectors
    ]
    for ns, block in planned.blocks:
        what = "none" if block is None else ", ".join(block.peers)
        lines.append(f"  ~ drop rules of unreachable links in {ns}: {what}")
    return "# underlay\n" + "\n".join(lines) + "\n"


def _node_title(n: NodePlan) -> str:
    if n.host is None:
        return f"# node {n.node}\n"
    if n.host.action is Action.DELETE:
        return f"# node {n.node} (removed: its overlay is destroyed)\n"
    if n.teardown is not None:
        gone = n.teardown.plan.destroy
        return f"# node {n.node} (re-created: its {gone} resources are destroyed first)\n"
    return f"# node {n.node} (new)\n"


def render_lab_plan(planned: LabPlan) -> str:
    """The underlay's changes, `# node X` and its plan (views/plan.py) per node, the total."""
    underlay = planned.hosts or planned.blocks or planned.collectors
    parts = [_underlay_text(planned)] if underlay else []
    parts += [_node_title(n) + render_plan(n.plan) for n in planned.nodes]
    parts += [
        f"# gateway {g.gateway}\n" + render_plan(g.plan, gateway=True) for g in planned.gateways
    ]
    name = planned.state.name
    if planned.no_changes:
        total = f"No changes. Every node of lab {name!r} matches the spec."
    else:
        add, change, destroy = planned.counts()
        changed = sum(not n.plan.no_changes or n.host is not None for n in planned.nodes)
        total = (
            f"Lab {name!r}: {add} to add, {change} to change, {destroy} to destroy "
            f"on {changed} of {len(planned.nodes)} nodes"
        )
        gateways = sum(not g.plan.no_changes for g in planned.gateways)
        total += f" and {gateways} of {len(planned.gateways)} gateways." if gateways else "."
        if planned.hosts:
            count = {a: sum(c.action is a for c in planned.hosts) for a in Action}
            total += (
                f"\nUnderlay: {count[Action.CREATE]} node(s) to add, "
                f"{count[Action.REPLACE]} to replace, {count[Action.DELETE]} to remove."
            )
        if planned.collectors:
            added = sum(a is Action.CREATE for a, _ in planned.collectors)
            total += (
                f"\nNetFlow collectors: {added} to add, "
                f"{len(planned.collectors) - added} to remove."
            )
    if planned.left_out:
        parts.append(
            "Left out of the lab, which this machine cannot make (no plan holds them):\n"
            + "".join(f"  {node}: {line}\n" for node, line in planned.left_out)
        )
    return "\n".join(parts) + "\n" + total + "\n"


def lab_plan_json(planned: LabPlan) -> str:
    add, change, destroy = planned.counts()
    data: dict[str, Any] = {
        "lab": planned.state.name,
        "spec": planned.spec,
        "nodes": {n.node: plan_to_json(n.plan) for n in planned.nodes},
        "gateways": {g.gateway: plan_to_json(g.plan) for g in planned.gateways},
        "underlay": {
            "nodes": [
                {"node": c.node, "action": c.action.value, "forces": list(c.forces)}
                for c in planned.hosts
            ],
            "drop_rules": [ns for ns, _ in planned.blocks],
            "collectors": [
                {"collector": c.name, "action": action.value} for action, c in planned.collectors
            ],
        },
        "summary": {"add": add, "change": change, "destroy": destroy},
        "no_changes": planned.no_changes,
        "left_out": [{"node": node, "what": line} for node, line in planned.left_out],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
