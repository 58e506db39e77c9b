"""The lab's public side brought up once the nodes' overlays run, and taken down.

In this order (hercc.lab.harness.Lab.up calls it once every node's overlay
runs with nobody dialling, so that the nodes dial gateways that listen):

  1. the lab CA and a certificate per workload that serves https (certs.py);
  2. a server per exposed workload, in its namespace (workload_servers.py);
  3. named in the internet namespace (dns.py), and the namespace's
     resolv.conf and CA bundle (internet.py).

`gateways` names the gateways the lab runs: the nodes' tunnels to any
other dial on, unanswered, and `lab check` leaves their paths out.

Every daemon goes into the caller's list as soon as it runs, so a failure
halfway leaves the caller what to stop. Files go under the lab's working
directory: certs/, servers/<workload>.log, dns/.
"""

from __future__ import annotations

from pathlib import Path

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab.certs import CertFiles, make_certificates
from hercc.lab.daemons import Daemon, stop_all
from hercc.lab.dns import start_named
from hercc.lab.internet import remove_etc, write_etc
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


def tear_down_public(topology: Topology, daemons: list[Daemon]) -> list[str]:
    """Stop `daemons` (the last started first), remove the internet namespace's /etc;
    what would not stop."""
    errors = stop_all(daemons)
    if topology.internet is not None:
        remove_etc(topology.internet.ns)
    return errors
