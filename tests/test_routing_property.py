"""Property: on random graphs, following AllowedIPs hop by hop (longest prefix)
reaches every destination without a loop, at minimal cost, and at each hop the
receiver's longest-prefix match for the source names the sender (that is how
WireGuard filters what it decrypts).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hercc import ir
from hercc.diagnostics import SpecError
from hercc.passes.routing import Graph
from tests.conftest import compile_text

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@st.composite
def topologies(draw: st.DrawFn) -> str:
    n = draw(st.integers(2, 9))
    names = [f"n{i}" for i in range(n)]
    nat = [draw(st.booleans()) for _ in names]
    if all(nat):
        nat[draw(st.integers(0, n - 1))] = False
    out = ["network prod {\n  range 10.20.0.0/16\n  range6 fd42:20::/48\n}"]
    for i, name in enumerate(names):
        body = "  nat" if nat[i] else f"  endpoint 192.0.2.{i + 1}"
        if not nat[i] and draw(st.integers(0, 4)) == 0:
            body += "\n  relay off"
        out.append(f"node {name} {{\n  network prod\n{body}\n}}")
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    for a, b in draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))):
        ia, ib = names.index(a), names.index(b)
        kind = draw(st.sampled_from(["cost", "cost", "unreachable"]))
        if kind == "unreachable":
            out.append(f"link {a} {b} {{ unreachable }}")
        elif not (nat[ia] and nat[ib]):
            out.append(f"link {a} {b} {{ cost {draw(st.integers(1, 30))} }}")
    return "\n".join(out) + "\n"


def lpm(peers: tuple[ir.Peer, ...], addr: str) -> str | None:
    ip = ipaddress.ip_address(addr)
    best: tuple[int, str] | None = None
    for peer in peers:
        for prefix in peer.allowed_ips:
            net: Net = ipaddress.ip_network(prefix)
            if ip in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, peer.node)
    return None if best is None else best[1]


def min_costs(graph: Graph) -> dict[tuple[str, str], float]:
    """Floyd-Warshall with only relays as intermediates: an independent oracle."""
    inf = float("inf")
    d: dict[tuple[str, str], float] = {}
    for u in graph.members:
        for v in graph.members:
            c = graph.cost(u, v) if u != v else 0
            d[(u, v)] = inf if c is None else c
    for k in graph.relay_bit:
        for u in graph.members:
            for v in graph.members:
                if d[(u, k)] + d[(k, v)] < d[(u, v)]:
                    d[(u, v)] = d[(u, k)] + d[(k, v)]
    return d


def check_walks(model: ir.IR) -> None:
    graph = Graph(model, "prod")
    oracle = min_costs(graph)
    member = {n.name: n.networks[0] for n in model.nodes}
    for src in graph.members:
        for dst in graph.members:
            if src == dst:
                continue
            for family in ("address", "address6"):
                src_addr, dst_addr = getattr(member[src], family), getattr(member[dst], family)
                here, cost, seen = src, 0, {src}
                while here != dst:
                    nxt = lpm(member[here].peers, dst_addr)
                    assert nxt is not None, f"{here} has no route to {dst} ({family})"
                    assert nxt not in seen, f"loop {src}->{dst} at {nxt}"
                    back = lpm(member[nxt].peers, src_addr)
                    assert back == here, (
                        f"{nxt} would drop {src}'s packet from {here} (matches {back})"
                    )
                    hop_cost = graph.cost(here, nxt)
                    assert hop_cost is not None, f"{here}->{nxt} has no underlay link"
                    assert nxt == dst or nxt in graph.relay_bit, f"{nxt} relays but may not"
                    cost += hop_cost
                    seen.add(nxt)
                    here = nxt
                assert cost == oracle[(src, dst)], (
                    f"{src}->{dst} cost {cost}, best {oracle[(src, dst)]}"
                )


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=topologies())
def test_allowed_ips_walk_is_loop_free_minimal_and_accepted(tmp_path: Path, text: str) -> None:
    try:
        model = compile_text(tmp_path, text).ir
    except SpecError as err:
        # Disconnected graphs are rejected with a diagnostic, never routed wrongly.
        assert {d.code for d in err.diagnostics} <= {"E242", "E244"}, err.diagnostics
        return
    check_walks(model)


def test_reference_walks() -> None:
    from hercc.pipeline import compile_spec
    from tests.conftest import EXAMPLES

    check_walks(compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir)


def test_two_relay_path_in_reference() -> None:
    from hercc.pipeline import compile_spec
    from tests.conftest import EXAMPLES

    routes = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).routes["prod"]
    assert routes.path("gamma", "delta") == ["gamma", "beta", "alpha", "delta"]
    assert routes.path("delta", "gamma") == ["delta", "alpha", "beta", "gamma"]
    assert routes.cost("gamma", "delta") == 25


def test_nat_nodes_share_one_relay_when_costs_tie(tmp_path: Path) -> None:
    text = (
        "network p {\n  range 10.1.0.0/16\n}\n"
        + "".join(f"node r{i} {{\n  network p\n  endpoint 192.0.2.{i + 1}\n}}\n" for i in range(3))
        + "".join(f"node h{i} {{\n  network p\n  nat\n}}\n" for i in range(5))
    )
    model = compile_text(tmp_path, text).ir
    for node in model.nodes:
        if node.kind == "nat":
            # Public nodes directly, everything else behind r0: the whole range on one peer.
            ranged = [p.node for p in node.networks[0].peers if "10.1.0.0/16" in p.allowed_ips]
            assert ranged == ["r0"]
            assert all(p.keepalive_s == 25 and p.endpoint for p in node.networks[0].peers)


@pytest.mark.parametrize("relay", ["on", "off"])
def test_relay_off_is_never_a_hop(tmp_path: Path, relay: str) -> None:
    text = (
        "network p {\n  range 10.1.0.0/16\n}\n"
        f"node pub {{\n  network p\n  endpoint 192.0.2.1\n  relay {relay}\n}}\n"
        "node a {\n  network p\n  nat\n}\nnode b {\n  network p\n  nat\n}\n"
    )
    if relay == "off":
        with pytest.raises(SpecError) as info:
            compile_text(tmp_path, text)
        assert "E244" in {d.code for d in info.value.diagnostics}
    else:
        model = compile_text(tmp_path, text).ir
        assert [m.forwarding for n in model.nodes if n.name == "pub" for m in n.networks] == [True]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=topologies())
def test_router_matches_dijkstra_from_every_node(tmp_path: Path, text: str) -> None:
    """The clean-node shortcut gives exactly the paths of full Dijkstra."""
    from hercc.passes.routing import Router, shortest_paths

    try:
        model = compile_text(tmp_path, text).ir
    except SpecError:
        return
    graph = Graph(model, "prod")
    router = Router(graph)
    for src in graph.members:
        tree = shortest_paths(graph, src)
        for dst in graph.members:
            if dst != src:
                assert router.hop(src, dst) == tree.first.get(dst), (src, dst)
                assert router.cost(src, dst) == tree.weight[dst][0], (src, dst)
        assert router.hops_from(src) == tree.first


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=topologies())
def test_shared_peer_lists_equal_the_general_ones(tmp_path: Path, text: str) -> None:
    """peers_for's per-class shortcut gives exactly peers_of(hops_from(...))."""
    from hercc.passes.routing import Router, _PeerMaker

    text = "\n".join(line for line in text.splitlines() if not line.startswith("link "))
    try:
        model = compile_text(tmp_path, text + "\n").ir
    except SpecError:
        return
    graph = Graph(model, "prod")
    router = Router(graph)
    memberships = {(n.name, m.network): m for n in model.nodes for m in n.networks}
    pubkeys = {n.name: n.pubkey for n in model.nodes}
    [net] = model.networks
    fast = _PeerMaker(net, graph, memberships, pubkeys)
    slow = _PeerMaker(net, graph, memberships, pubkeys)
    for name in graph.members:
        assert fast.peers_for(name, router) == slow.peers_of(name, router.hops_from(name)), name
