"""The public paths of a lab, and what must answer on each. Pure.

For every exposed name or port and every gateway it is exposed through,
one path from the internet namespace to that gateway's public address
(IPv4, and IPv6 where the gateway has address6): `http` and `https` to the
name on 80 and 443 (curl --resolve, so SNI and Host are the name's), `tcp`
to the port (a connect and the server's banner). The answer must come from
one of the service's replicas (hercc.lab.servers names its workload first).
And one `dns` path per name: the lab's DNS server answers one A (and AAAA)
record per gateway of the name.

`up` records them in the state file; `lab check` tries every one whose
gateway runs (hercc.lab.persistent.probes).
"""

from __future__ import annotations

from dataclasses import dataclass

from hercc import ir
from hercc.passes.gateways import PROTOCOL_PORTS


@dataclass(frozen=True)
class PublicPath:
    kind: str  # http | https | tcp | dns
    name: str  # the host name (http, https, dns), or the tcp port as text
    port: int  # the public port; 53 for dns
    gateway: str  # "" for dns
    address: str  # where the client connects: the gateway's address; dns: the expected records
    answers: tuple[str, ...]  # who may answer: the service's replicas; dns: every address


def public_paths(model: ir.IR) -> list[PublicPath]:
    """Every (exposed name or port, gateway, address family) path, then one dns path per name."""
    gateways = {g.name: g for g in model.gateways}
    paths: list[PublicPath] = []
    names: dict[str, set[str]] = {}
    for svc in model.services:
        for ex in svc.exposes:
            name = ex.host.lower() if ex.host is not None else str(ex.port)
            port = ex.port if ex.protocol == "tcp" else PROTOCOL_PORTS[ex.protocol]
            assert port is not None
            for via in ex.via:
                gw = gateways[via]
                for address in (gw.address, gw.address6):
                    if address is not None:
                        paths.append(
                            PublicPath(ex.protocol, name, port, via, address, svc.workloads)
                        )
                        if ex.protocol != "tcp":
                            names.setdefault(name, set()).add(address)
    zones = [z.zone for z in model.dns]
    paths += [
        PublicPath("dns", name, 53, "", "", tuple(sorted(addresses)))
        for name, addresses in sorted(names.items())
        if any(name == z or name.endswith("." + z) for z in zones)
    ]
    return paths
