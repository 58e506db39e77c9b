"""Pass 2: semantic checks that need resolved names but no addresses."""

from __future__ import annotations

from hercc import ast, codes
from hercc.diagnostics import Collector
from hercc.passes.clashes import check_clashes
from hercc.passes.gateways import PROTOCOL_PORTS, TUNNEL_POOL, TUNNEL_POOL6
from hercc.passes.resolve import Names
from hercc.source import Span
from hercc.values import IPNetwork


def check(spec: ast.Spec, names: Names, diags: Collector) -> None:
    _check_ranges(spec, diags)
    _check_nodes(spec, names, diags)
    _check_workloads(spec, names, diags)
    _check_gateways(spec, diags)
    _check_tunnel_pool(spec, diags)
    _check_zones(spec, diags)
    _check_replicas(spec, names, diags)
    check_clashes(spec, names, diags)


def _check_ranges(spec: ast.Spec, diags: Collector) -> None:
    for attr in ("range4", "range6"):
        seen: list[tuple[IPNetwork, ast.NetworkDecl]] = []
        for net in spec.networks:
            r: IPNetwork | None = getattr(net, attr)
            if r is None:
                continue
            key = "range" if attr == "range4" else "range6"
            for other_range, other in seen:
                if r.overlaps(other_range):
                    diags.error(
                        codes.RANGE_OVERLAP,
                        f"network {net.name}: {key} {r} overlaps {other_range} "
                        f"of network {other.name}",
                        net.spans[key],
                        "every network is its own tenant: give each a distinct range",
                    )
            seen.append((r, net))
        for net in spec.networks:
            if attr == "range4" and net.range4 is not None and net.range4.prefixlen > 30:
                diags.error(
                    codes.SUBNET_SIZE,
                    f"network {net.name}: range {net.range4} is smaller than one /30 subnet",
                    net.spans["range"],
                    "a node's subnet holds its address and its workloads': "
                    "give the network a range of /30 or wider",
                )
            elif attr == "range4" and net.range4 is not None:
                p = net.subnet_prefix
                if not net.range4.prefixlen <= p <= 30:
                    diags.error(
                        codes.SUBNET_SIZE,
                        f"network {net.name}: subnets /{p} do not fit range {net.range4}",
                        net.spans.get("subnets", net.span),
                        f"use a prefix from /{net.range4.prefixlen} to /30",
                    )
            if attr == "range6" and net.range6 is not None and net.range6.prefixlen > 64:
                diags.error(
                    codes.SUBNET_SIZE,
                    f"network {net.name}: range6 {net.range6} is smaller than one /64",
                    net.spans["range6"],
                )


def _check_nodes(spec: ast.Spec, names: Names, diags: Collector) -> None:
    for node in spec.nodes:
        if node.nat and node.endpoint is not None:
            diags.error(
                codes.NAT_ENDPOINT,
                f"node {node.name} is nat and has an endpoint",
                node.spans["endpoint"],
                "a nat node has no inbound path: drop the endpoint, or drop nat",
            )
        elif not node.nat and node.endpoint is None and "endpoint" not in node.spans:
            diags.error(
                codes.NO_ENDPOINT,
                f"node {node.name} has neither an endpoint nor nat",
                node.span,
                "add `endpoint HOST[:PORT]` for a public node, or `nat` for one behind NAT",
            )
        if node.nat and node.relay and "relay" in node.spans:
            diags.error(
                codes.NAT_RELAY,
                f"node {node.name} is nat and has relay on",
                node.spans["relay"],
                "nobody can dial a nat node, so it cannot relay: drop `relay on`, or drop nat",
            )
        if node.endpoint is not None and node.endpoint.port is not None and len(node.networks) > 1:
            diags.error(
                codes.ENDPOINT_PORT,
                f"node {node.name} is in {len(node.networks)} networks; "
                "its endpoint cannot fix one port",
                node.spans["endpoint"],
                "each network listens on its own `port`: write the endpoint without a port",
            )
        ports: dict[int, str] = {}
        for net_name in node.networks:
            net = names.networks.get(net_name)
            if net is None:
                continue
            port = net.port
            if (
                node.endpoint is not None
                and node.endpoint.port is not None
                and len(node.networks) == 1
            ):
                port = node.endpoint.port
            if port in ports:
                diags.error(
                    codes.PORT_CLASH,
                    f"node {node.name}: networks {ports[port]} and {net_name} "
                    f"both use WireGuard port {port}",
                    node.spans[f"network:{net_name}"],
                    f"give network {net_name} another `port`",
                )
            else:
                ports[port] = net_name
        seen_nets: set[str] = set()
        for net_name in node.networks:
            if net_name in seen_nets:
                diags.error(
                    codes.DUPLICATE,
                    f"node {node.name} joins network {net_name} twice",
                    node.spans[f"network:{net_name}"],
                )
            seen_nets.add(net_name)


def _check_workloads(spec: ast.Spec, names: Names, diags: Collector) -> None:
    for w in spec.workloads:
        node = names.nodes.get(w.node)
        if node is None:
            continue
        if w.network is None and len(node.networks) > 1:
            diags.error(
                codes.WRONG_NETWORK,
                f"workload {w.name}: node {node.name} is in several networks; say which",
                w.span,
                f"add `network` with one of: {', '.join(node.networks)}",
            )
        elif (
            w.network is not None and w.network not in node.networks and w.network in names.networks
        ):
            diags.error(
                codes.WRONG_NETWORK,
                f"workload {w.name}: node {node.name} is not in network {w.network}",
                w.spans["network"],
                f"node {node.name} is in: {', '.join(node.networks)}",
            )


def _check_gateways(spec: ast.Spec, diags: Collector) -> None:
    gateways = {g.name: g for g in spec.gateways}
    taken: dict[tuple[str, str, str], tuple[str, Span]] = {}
    for g in spec.gateways:
        if g.tunnel not in g.listen:
            continue
        if "tunnel" in g.spans:
            diags.error(
                codes.EXPOSED_TWICE,
                f"gateway {g.name}: tunnel port {g.tunnel} is also a listen port",
                g.spans["tunnel"],
            )
        else:  # the tunnel port is the default: point at the listen port that takes it
            diags.error(
                codes.EXPOSED_TWICE,
                f"gateway {g.name}: listen port {g.tunnel} is also the tunnel port "
                f"(the default `tunnel`)",
                g.spans.get(f"listen:{g.tunnel}", g.span),
                "give the gateway another `tunnel` port",
            )
    for svc in spec.services:
        for ex in svc.exposes:
            for gw_name in ex.via:
                gw = gateways.get(gw_name)
                if gw is None:
                    continue
                span = ex.spans["target"]
                if ex.protocol == "tcp":
                    assert ex.port is not None
                    key = (gw_name, "port", str(ex.port))
                    if ex.port in gw.listen or ex.port == gw.tunnel:
                        role = "tunnel" if ex.port == gw.tunnel else "listen"
                        diags.error(
                            codes.EXPOSED_TWICE,
                            f"gateway {gw_name}: port {ex.port} is already its {role} port",
                            span,
                        )
                        continue
                    what = f"port {ex.port}"
                else:
                    assert ex.host is not None
                    key = (gw_name, ex.protocol, ex.host)
                    port = PROTOCOL_PORTS[ex.protocol]
                    if port not in gw.listen:
                        diags.error(
                            codes.NOT_LISTENING,
                            f"gateway {gw_name} does not listen on port {port}, "
                            f"where it serves {ex.protocol}",
                            ex.spans[f"via:{gw_name}"],
                            f"add {port} to the gateway's `listen`",
                        )
                    what = f"{ex.protocol} host {ex.host}"
                if key in taken:
                    other, first = taken[key]
                    diags.error(
                        codes.EXPOSED_TWICE,
                        f"gateway {gw_name}: {what} is already exposed by service {other}",
                        span,
                        f"first exposed at {first}",
                    )
                else:
                    taken[key] = (svc.name, span)


def _check_tunnel_pool(spec: ast.Spec, diags: Collector) -> None:
    """Gateway tunnels take their addresses from fixed pools that no network may use."""
    for net in spec.networks:
        for key, rng, pool in (
            ("range", net.range4, TUNNEL_POOL),
            ("range6", net.range6, TUNNEL_POOL6),
        ):
            if rng is not None and rng.overlaps(pool):
                diags.error(
                    codes.TUNNEL_POOL_OVERLAP,
                    f"network {net.name}: {key} {rng} overlaps the gateway tunnel pool {pool}",
                    net.spans[key],
                    "gateway tunnels are kept apart from every network: choose another range",
                )


def _check_zones(spec: ast.Spec, diags: Collector) -> None:
    """With `dns` zones declared, every exposed host name belongs to one of them."""
    for d in spec.dns:
        inside = [ns for ns in d.nameservers if in_zone(ns, d.zone)]
        if not d.nameservers or inside:
            diags.warning(
                codes.NO_ZONE_FILE,
                f"dns {d.zone}: "
                + (f"nameserver {inside[0]} lies inside the zone" if inside else "no nameserver")
                + "; the build writes no zone file for it",
                d.spans.get("nameserver", d.span),
                "a zone file needs NS records, and the spec cannot give a nameserver inside "
                "its own zone the address records (glue) it needs: name one outside the zone",
            )
    zones = [d.zone for d in spec.dns]
    if not zones:
        return  # the spec publishes no DNS: its names are managed elsewhere
    for svc in spec.services:
        for ex in svc.exposes:
            host = ex.host
            if host is None or any(in_zone(host, z) for z in zones):
                continue
            diags.error(
                codes.NAME_OUTSIDE_ZONES,
                f"service {svc.name}: {host} is in no dns zone of the spec",
                ex.spans["target"],
                f"declare `dns ZONE` for it (zones: {', '.join(sorted(zones))})",
            )


def _check_replicas(spec: ast.Spec, names: Names, diags: Collector) -> None:
    """Replicas on one node fall together: a warning, the build goes on."""
    for svc in spec.services:
        replicas = sorted(set(svc.workloads))
        nodes = {names.workloads[w].node for w in replicas if w in names.workloads}
        if len(replicas) > 1 and len(nodes) == 1:
            diags.warning(
                codes.REPLICAS_ONE_NODE,
                f"service {svc.name}: its replicas {', '.join(replicas)} all run on node "
                f"{nodes.pop()}",
                svc.spans["workload"],
                "losing that node loses the service: put a replica on another node",
            )


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)
