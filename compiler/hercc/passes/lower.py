"""Pass 5: AST + allocation + underlay -> the IR (positions dropped, lists sorted)."""

from __future__ import annotations

from hercc import ast, ir
from hercc.passes.allocate import Allocation
from hercc.values import Endpoint


def _s(value: object | None) -> str | None:
    return None if value is None else str(value)


def lower(spec: ast.Spec, alloc: Allocation, underlay: ir.Underlay) -> ir.IR:
    nets = {n.name: n for n in spec.networks}
    networks = tuple(
        ir.Network(
            name=n.name,
            range=_s(n.range4),
            range6=_s(n.range6),
            subnet_prefix=n.subnet_prefix,
            subnet6_prefix=ast.SUBNET6_PREFIX if n.range6 is not None else None,
            port=n.port,
            mtu=n.mtu,
            keepalive_ms=n.keepalive_ms,
            psk=n.psk,
        )
        for n in sorted(spec.networks, key=lambda n: n.name)
    )
    nodes = tuple(_node(n, nets, alloc) for n in sorted(spec.nodes, key=lambda n: n.name))
    by_node = {n.name: n for n in spec.nodes}
    workloads = tuple(
        ir.Workload(
            name=w.name,
            node=w.node,
            network=w.network or by_node[w.node].networks[0],
            address=alloc.workloads.get(w.name, (None, None))[0],
            address6=alloc.workloads.get(w.name, (None, None))[1],
        )
        for w in sorted(spec.workloads, key=lambda w: w.name)
    )
    gateways = tuple(
        ir.Gateway(
            g.name, str(g.address), _s(g.address6), g.farmer, tuple(sorted(g.listen)), g.tunnel
        )
        for g in sorted(spec.gateways, key=lambda g: g.name)
    )
    services = tuple(
        ir.Service(
            s.name,
            tuple(sorted(set(s.workloads))),
            s.port,
            tuple(ir.Expose(e.protocol, e.host, e.port, e.via) for e in s.exposes),
            None
            if s.health is None
            else ir.Health(s.health.protocol, s.health.path, s.health.interval_ms),
        )
        for s in sorted(spec.services, key=lambda s: s.name)
    )
    return ir.IR(
        networks=networks,
        nodes=nodes,
        workloads=workloads,
        underlay=underlay,
        gateways=gateways,
        services=services,
        dns=tuple(_zone(d, spec) for d in sorted(spec.dns, key=lambda d: d.zone)),
        enterprise=tuple(_enterprise(e) for e in sorted(spec.enterprises, key=lambda e: e.name)),
        fastpath=spec.fastpath,
        netflow=None
        if spec.netflow is None
        else ir.Netflow(
            collector=spec.netflow.collector.render(
                spec.netflow.collector.port or ast.DEFAULT_NETFLOW_PORT
            ),
            protocol=spec.netflow.protocol,
            active_timeout_ms=spec.netflow.active_timeout_ms,
            idle_timeout_ms=spec.netflow.idle_timeout_ms,
            sampling=spec.netflow.sampling,
        ),
    )


def _node(n: ast.NodeDecl, nets: dict[str, ast.NetworkDecl], alloc: Allocation) -> ir.Node:
    members = []
    for net_name in sorted(n.networks):
        net = nets[net_name]
        addrs = alloc.subnets[(net_name, n.name)]
        port = net.port
        if n.endpoint is not None and n.endpoint.port is not None:
            port = n.endpoint.port
        members.append(
            ir.Membership(
                network=net_name,
                subnet=_s(addrs.subnet),
                subnet6=_s(addrs.subnet6),
                address=None if addrs.subnet is None else str(addrs.subnet.network_address + 1),
                address6=None if addrs.subnet6 is None else str(addrs.subnet6.network_address + 1),
                listen_port=port,
                endpoint=None if n.endpoint is None else _endpoint(n.endpoint, port),
            )
        )
    return ir.Node(
        n.name, "nat" if n.nat else "public", n.relay and not n.nat, n.pubkey, tuple(members)
    )


def _endpoint(ep: Endpoint, port: int) -> str:
    return ep.render(port)


def _zone(d: ast.DnsDecl, spec: ast.Spec) -> ir.DnsZone:
    """One A/AAAA per gateway of each exposed name in the zone: DNS round robin."""
    gateways = {g.name: g for g in spec.gateways}
    records: set[tuple[str, str, str]] = set()
    for s in spec.services:
        for e in s.exposes:
            if e.host is None or not (e.host == d.zone or e.host.endswith("." + d.zone)):
                continue
            for gw_name in e.via:
                gw = gateways[gw_name]
                records.add((e.host, "A", str(gw.address)))
                if gw.address6 is not None:
                    records.add((e.host, "AAAA", str(gw.address6)))
    return ir.DnsZone(
        d.zone, d.ttl, d.nameservers, tuple(ir.DnsRecord(*r) for r in sorted(records))
    )


def _enterprise(e: ast.EnterpriseDecl) -> ir.Enterprise:
    return ir.Enterprise(
        name=e.name,
        vxlan=tuple(
            ir.Vxlan(v.name, v.node, v.vni, str(v.local), str(v.remote), v.port, v.bridge)
            for v in sorted(e.vxlans, key=lambda v: v.name)
        ),
        ipsec=tuple(
            ir.Ipsec(
                i.name,
                i.node,
                i.remote.host,
                i.remote.port,
                tuple(str(t) for t in i.local_ts),
                tuple(str(t) for t in i.remote_ts),
                i.auth,
                ir.SecretRef(i.secret) if i.cert is None else None,
                i.proposals,
                None
                if i.cert is None
                else ir.IpsecCert(i.cert.cert, i.cert.ca, ir.SecretRef(i.secret), i.cert.remote_id),
            )
            for i in sorted(e.ipsecs, key=lambda i: i.name)
        ),
        vlan=tuple(
            ir.Vlan(v.name, v.node, v.parent, v.vlan_id, _s(v.address))
            for v in sorted(e.vlans, key=lambda v: v.name)
        ),
        bridge=tuple(
            ir.Bridge(b.name, b.node, b.ports) for b in sorted(e.bridges, key=lambda b: b.name)
        ),
    )
