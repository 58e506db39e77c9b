"""Pass 4: the underlay graph.

Only explicit links are stored: the defaults of reference.herc (two public
nodes at cost 10, a nat node to a public node at cost 10, two nat nodes not at
all) are rules, not edges, so a 10,000-node spec does not become 10^8 edges.
"""

from __future__ import annotations

from hercc import ast, codes, ir
from hercc.diagnostics import Collector
from hercc.passes.resolve import Names


def underlay(spec: ast.Spec, names: Names, diags: Collector) -> ir.Underlay:
    links: dict[tuple[str, str], ir.Link] = {}
    for link in spec.links:
        if link.a == link.b:
            diags.error(
                codes.LINK_SELF,
                f"link names node {link.a} twice",
                link.spans["b"],
                "a link joins two different nodes",
            )
            continue
        a, b = names.nodes.get(link.a), names.nodes.get(link.b)
        if a is None or b is None:
            continue
        if a.nat and b.nat and link.cost is not None:
            diags.error(
                codes.LINK_NAT_PAIR,
                f"link {link.a} {link.b}: both nodes are nat, so neither can dial the other",
                link.span,
                "nat nodes reach each other through a relay",
            )
            continue
        key = (min(link.a, link.b), max(link.a, link.b))
        if key in links:
            diags.error(
                codes.LINK_DUPLICATE, f"link between {key[0]} and {key[1]} given twice", link.span
            )
            continue
        links[key] = ir.Link(key[0], key[1], link.cost)
    _check_isolation(spec, links, diags)
    return ir.Underlay(
        public_public_cost=ast.DEFAULT_LINK_COST,
        nat_public_cost=ast.DEFAULT_LINK_COST,
        links=tuple(links[k] for k in sorted(links)),
    )


def _check_isolation(
    spec: ast.Spec, links: dict[tuple[str, str], ir.Link], diags: Collector
) -> None:
    """Every node of a network must have an underlay edge to another member."""
    cut: dict[str, set[str]] = {}
    for (a, b), link in links.items():
        if link.cost is None:
            cut.setdefault(a, set()).add(b)
            cut.setdefault(b, set()).add(a)
    for net in spec.networks:
        members = [n for n in spec.nodes if net.name in n.networks]
        if len(members) < 2:
            continue
        public = {n.name for n in members if not n.nat}
        member_names = {n.name for n in members}
        for node in members:
            candidates = len(public) - (1 if node.name in public else 0)
            if not node.nat:
                candidates = len(members) - 1
            blocked = cut.get(node.name, set())
            if not node.nat:
                reachable = candidates - len(blocked & member_names)
            else:
                reachable = candidates - len(blocked & public)
            if reachable <= 0:
                diags.error(
                    codes.ISOLATED,
                    f"node {node.name} has no underlay path to any other node "
                    f"of network {net.name}",
                    node.span,
                    "a nat node needs a public node it may reach; remove an `unreachable` link"
                    if node.nat
                    else "every other node of the network is cut off by `unreachable` links",
                )
