"""Which workload serves what in the lab, and its server (hercc.lab.servers) started and stopped.

`served(model)` is pure: for every workload that is a replica of an exposed
service, its ports and what each is exposed as (http, https, tcp), and the
https host names its certificate must carry. `start_server` runs one
`python -m hercc.lab.servers` per workload in its namespace, waits until
every port listens, and returns the Daemon to record.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hercc
from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab.certs import CertFiles
from hercc.lab.daemons import Daemon, start_daemon, wait_alive
from hercc.sysio.process import run


@dataclass(frozen=True)
class Served:
    workload: str
    ports: tuple[tuple[int, tuple[str, ...]], ...]  # (port, protocols), sorted
    https_hosts: tuple[str, ...]  # the certificate's names; empty: no TLS


def served(model: ir.IR) -> list[Served]:
    """Every exposed workload's ports and protocols, by workload name."""
    ports: dict[str, dict[int, set[str]]] = {}
    hosts: dict[str, set[str]] = {}
    for svc in model.services:
        for w in svc.workloads:
            for ex in svc.exposes:
                ports.setdefault(w, {}).setdefault(svc.port, set()).add(ex.protocol)
                if ex.protocol == "https" and ex.host is not None:
                    hosts.setdefault(w, set()).add(ex.host.lower())
    return [
        Served(
            w,
            tuple((p, tuple(sorted(protos))) for p, protos in sorted(ports[w].items())),
            tuple(sorted(hosts.get(w, ()))),
        )
        for w in sorted(ports)
    ]


def server_argv(s: Served, cert: CertFiles | None) -> list[str]:
    argv = [sys.executable, "-m", "hercc.lab.servers", s.workload]
    if cert is not None:
        argv += ["--tls", str(cert.cert), str(cert.key)]
    return argv + [f"{port}={','.join(protos)}" for port, protos in s.ports]


def listening(ns: str, ports: set[int]) -> bool:
    """Whether every port of `ports` has a TCP listener in namespace `ns`."""
    out = run(["ss", "-Hntl"], netns=ns, timeout=5, check=False, error=LabError).stdout
    fields = [line.split() for line in out.splitlines()]
    found = {int(f[3].rsplit(":", 1)[-1]) for f in fields if len(f) >= 4}
    return ports <= found


def start_server(s: Served, ns: str, certs: Mapping[str, CertFiles], log: Path) -> Daemon:
    """Start the server of `s` in namespace `ns` (wait_server: until its ports listen)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(hercc.__file__).resolve().parent.parent)
    argv = server_argv(s, certs.get(s.workload) if s.https_hosts else None)
    return start_daemon("server", s.workload, ns, argv, log, env)


def wait_server(d: Daemon, s: Served) -> None:
    """Wait until every port of `s` listens; LabError (with the log) if the server exits."""
    wait_alive(d, lambda: listening(d.ns, {p for p, _ in s.ports}))
