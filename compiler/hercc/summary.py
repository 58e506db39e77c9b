"""A readable summary of a build directory, for people (make run prints it)."""

from __future__ import annotations

from hercc.build_dir import BuildDir


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def render_summary(build: BuildDir) -> str:
    model = build.topology
    out: list[str] = []
    out.append(f"Networks ({len(model.networks)})")
    rows = [["NAME", "RANGE", "RANGE6", "SUBNETS", "PORT", "MTU"]]
    for n in model.networks:
        rows.append(
            [
                n.name,
                n.range or "-",
                n.range6 or "-",
                f"/{n.subnet_prefix}",
                str(n.port),
                str(n.mtu),
            ]
        )
    out += _table(rows)
    out.append(f"\nNodes ({len(model.nodes)})")
    rows = [["NAME", "KIND", "NETWORK", "SUBNET", "ADDRESS", "ADDRESS6", "ENDPOINT"]]
    for node in model.nodes:
        for m in node.networks:
            kind = node.kind + (" relay" if node.relay else "")
            rows.append(
                [
                    node.name,
                    kind,
                    m.network,
                    m.subnet or "-",
                    m.address or "-",
                    m.address6 or "-",
                    m.endpoint or "(dials out)",
                ]
            )
    out += _table(rows)
    out.append(f"\nWorkloads ({len(model.workloads)})")
    rows = [["NAME", "NODE", "NETWORK", "ADDRESS", "ADDRESS6"]]
    for w in model.workloads:
        rows.append([w.name, w.node, w.network, w.address or "-", w.address6 or "-"])
    out += _table(rows)
    if model.services:
        out.append(f"\nServices ({len(model.services)})")
        rows = [["NAME", "WORKLOAD", "PORT", "EXPOSED"]]
        for s in model.services:
            exposed = ", ".join(
                f"{e.protocol} {e.host or e.port} via {'+'.join(e.via)}" for e in s.exposes
            )
            rows.append([s.name, ", ".join(s.workloads), str(s.port), exposed or "-"])
        out += _table(rows)
    links = model.underlay.links
    out.append(
        f"\nUnderlay: default cost {model.underlay.public_public_cost}, "
        f"{len(links)} explicit link{'s' if len(links) != 1 else ''}"
    )
    files = build.files
    out.append(f"Files: {len(files) + 1} (manifest.json lists {len(files)} with sha256)")
    return "\n".join(out) + "\n"
