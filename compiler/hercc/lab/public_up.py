"""The lab's public side brought up once the nodes' overlays run, and taken down.

In this order (hercc.lab.harness.Lab.up calls it once every node's overlay
runs with nobody dialling, so that the nodes dial gateways that listen):

  1. the lab CA and a certificate per workload that serves https (certs.py);
  2. a server per exposed workload, in its namespace (workload_servers.py);
  3. named in the internet namespace (dns.py), and the namespace's
     resolv.conf and CA bundle (internet.py).

Then, before the nodes dial, `gateways_up` plans and applies every
gateway with the gateway service (gateways.py): HAProxy and wireguard-go
in the gateway's namespace, recorded as daemons. `gateways` names the
gateways the lab runs: the nodes' tunnels to any other dial on, unanswered.

Every daemon goes into the caller's list as soon as it runs, so a failure
halfway leaves the caller what to stop. Files go under the lab's working
directory: certs/, servers/<workload>.log, dns/.
"""

from __future__ import annotations

import os
from pathlib import Path

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab import gateways
from hercc.lab.certs import CertFiles, make_certificates
from hercc.lab.daemons import Daemon, stop_all, stop_daemon
from hercc.lab.dns import start_named
from hercc.lab.internet import remove_etc, write_etc
from hercc.lab.keys import KeySource
from hercc.lab.naming import KeyFiles
from hercc.lab.public import GatewayHost
from hercc.lab.topology import Topology
from hercc.lab.workload_servers import Served, served, start_server, wait_server


class PublicSide:
    """What `up` made of the public side: the CA, the certificates, the server of each workload."""

    def __init__(self, model: ir.IR, topology: Topology, workdir: Path) -> None:
        self.model = model
        self.topology = topology
        self.workdir = workdir
        self.ca: Path | None = None
        self.certs: dict[str, CertFiles] = {}
        self.gateways: set[str] = set()  # the gateways the lab runs

    def up(self, daemons: list[Daemon]) -> None:
        """Certificates, servers, named; each daemon appended to `daemons` once it runs."""
        serving = served(self.model)
        https = [(s.workload, s.https_hosts) for s in serving if s.https_hosts]
        self.ca, self.certs = make_certificates(self.workdir / "certs", self.topology.prefix, https)
        started = []
        for s in serving:  # started side by side: each takes a Python's start-up
            started.append((self._start(s), s))
            daemons.append(started[-1][0])
        for d, s in started:
            wait_server(d, s)
        internet = self.topology.internet
        if internet is None:
            return
        write_etc(internet, self.ca)
        named = start_named(self.model, internet, self.workdir / "dns")
        if named is not None:
            daemons.append(named)

    def gateways_up(self, keys: KeySource, daemons: list[Daemon]) -> None:
        """Every gateway planned and applied; its HAProxy and wireguard-go appended to `daemons`."""
        for g in self.topology.gateways:
            self.start_gateway(g.gateway, keys, daemons)

    def start_gateway(self, gateway: str, keys: KeySource, daemons: list[Daemon]) -> None:
        """Apply `gateway` from what runs of it (all of it, after stop_gateway)."""
        g = self._gateway(gateway)
        daemons[:] = [d for d in daemons if not (d.name == gateway and d.role != "server")]
        daemons += gateways.apply(gateways.plan(self.model, g, self.workdir, KeyFiles(keys)))
        self.gateways.add(gateway)

    def stop_gateway(self, gateway: str, daemons: list[Daemon]) -> None:
        """Kill `gateway`'s HAProxy and wireguard-go (a gateway lost)."""
        daemons[:] = gateways.stop(self._gateway(gateway), daemons)
        self.gateways.discard(gateway)

    def _gateway(self, gateway: str) -> GatewayHost:
        for g in self.topology.gateways:
            if g.gateway == gateway:
                return g
        raise LabError(f"the lab has no gateway {gateway!r}")

    def stop_server(self, workload: str, daemons: list[Daemon]) -> None:
        """Stop the server of `workload`; it leaves `daemons`."""
        for d in [d for d in daemons if d.role == "server" and d.name == workload]:
            if not stop_daemon(d):
                raise LabError(f"the server of {workload} (pid {d.pid}) did not exit")
            daemons.remove(d)

    def start_server(self, workload: str) -> Daemon:
        """(Re)start the server of `workload` (a replica of an exposed service), once it listens."""
        found = [s for s in served(self.model) if s.workload == workload]
        if not found:
            raise LabError(f"workload {workload!r} serves nothing exposed in this lab")
        d = self._start(found[0])
        wait_server(d, found[0])
        return d

    def _start(self, s: Served) -> Daemon:
        ns = next(w.ns for w in self.topology.workloads if w.name == s.workload)
        log = self.workdir / "servers" / f"{s.workload}.log"
        return start_server(s, ns, self.certs, log)


def refresh_servers(model: ir.IR, topology: Topology, workdir: Path, daemons: list[Daemon]) -> None:
    """After `lab apply`: a server for every exposed workload, in its namespace as it is now.

    A server whose workload is gone, no longer exposed, or whose namespace
    was re-created (the process still holds the old one) is stopped; every
    exposed workload without a running server gets one (and a certificate
    from the lab's CA if it serves https).
    """
    serving = {s.workload: s for s in served(model)}
    ns_of = {w.name: w.ns for w in topology.workloads}
    for d in [d for d in daemons if d.role == "server"]:
        if d.name in serving and d.ns == ns_of.get(d.name) and in_netns(d):
            continue
        if not stop_daemon(d):
            raise LabError(f"the server of {d.name} (pid {d.pid}) did not exit")
        daemons.remove(d)
    running = {d.name for d in daemons if d.role == "server"}
    missing = [s for w, s in sorted(serving.items()) if w not in running]
    if not missing:
        return
    side = PublicSide(model, topology, workdir)
    https = [(s.workload, s.https_hosts) for s in missing if s.https_hosts]
    side.ca, side.certs = make_certificates(workdir / "certs", topology.prefix, https)
    for s in missing:
        daemons.append(side.start_server(s.workload))


def in_netns(d: Daemon) -> bool:
    """Whether the running daemon `d` is in the namespace its record names (not an old one of
    that name)."""
    try:
        return os.stat(f"/proc/{d.pid}/ns/net").st_ino == os.stat(f"/run/netns/{d.ns}").st_ino
    except OSError:
        return False


def tear_down_public(topology: Topology, daemons: list[Daemon]) -> list[str]:
    """Stop `daemons` (the last started first), remove the internet namespace's /etc;
    what would not stop."""
    errors = stop_all(daemons)
    if topology.internet is not None:
        remove_etc(topology.internet.ns)
    return errors
