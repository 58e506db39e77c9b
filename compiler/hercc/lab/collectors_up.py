"""The lab's collectors brought up, changed by `lab apply`, and taken down.

Each collector (hercc.lab.collectors) gets its namespace on the underlay
bridge (hercc.lab.underlay.add_stations) and an nfcapd bound to its address
and port, started like every lab daemon (hercc.lab.daemons: by PID, with its
start time). `lab up` starts them right after the underlay, before any node
is applied, so that an exporter's first datagrams, which carry the
templates, find the collector listening.

nfcapd rotates its file every ROTATE_SECONDS (its smallest interval): it
can be neither flushed nor rotated on demand without stopping it (SIGTERM
writes the file, but a restarted nfcapd has lost the exporters' templates
and drops their records until they are sent again), and it keeps what it
received in memory until the file rotates. So `lab flows`
(hercc.lab.collector_flows) waits for the rotation after the moment it was
asked, and reads every closed file; nfcapd keeps running.

Files, under the lab's directory: collectors/<address>-<port>/flows/ (nfcapd's
-w directory: nothing else goes there, nfdump -R reads all of it) and
collectors/<address>-<port>/nfcapd.log.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from hercc.diagnostics import LabError
from hercc.lab.collectors import Collector, collector_namespaces
from hercc.lab.daemons import Daemon, start_daemon, stop_daemon, wait_alive
from hercc.lab.underlay import TIMEOUT, Station, add_stations, delete_namespace
from hercc.sysio.files import make_dirs
from hercc.sysio.process import run

ROLE = "nfcapd"
ROTATE_SECONDS = 2
IDENT = "hercules-lab"  # nfcapd's -I: the source's name in its files


def collector_dir(workdir: Path, c: Collector) -> Path:
    return workdir / "collectors" / f"{c.address}-{c.port}"


def flows_dir(workdir: Path, c: Collector) -> Path:
    """nfcapd's -w directory."""
    return collector_dir(workdir, c) / "flows"


def nfcapd_argv(c: Collector, directory: Path) -> list[str]:
    return [
        "nfcapd",
        "-w",
        str(directory),
        "-b",
        c.address,
        "-p",
        str(c.port),
        "-t",
        str(ROTATE_SECONDS),
        "-I",
        IDENT,
    ]


def listening(c: Collector) -> bool:
    """Whether a UDP socket is bound to the collector's address and port in its namespace."""
    done = run(["ss", "-Hnlu"], netns=c.ns, check=False, timeout=TIMEOUT, error=LabError)
    bound = {line.split()[3] for line in done.stdout.splitlines() if len(line.split()) >= 4}
    return done.returncode == 0 and c.name in bound


def start_nfcapd(c: Collector, workdir: Path) -> Daemon:
    """nfcapd for `c` in its namespace, once it listens."""
    if shutil.which("nfcapd") is None:
        raise LabError(f"netflow collector {c.name}: nfcapd is not installed (Debian `nfdump`)")
    directory = flows_dir(workdir, c)
    make_dirs(directory, 0o700)
    log = collector_dir(workdir, c) / "nfcapd.log"
    d = start_daemon(ROLE, c.name, c.ns, nfcapd_argv(c, directory), log)
    wait_alive(d, lambda: listening(c))
    return d


def add_collectors(
    underlay_ns: str,
    collectors: Sequence[Collector],
    workdir: Path,
    created: list[str],
    daemons: list[Daemon],
) -> None:
    """Plug `collectors` into the bridge and start their nfcapd; each namespace goes into
    `created` and each nfcapd into `daemons` as soon as it exists."""
    first: dict[str, Collector] = {}  # two ports of one address share its namespace
    for c in collectors:
        first.setdefault(c.ns, c)
    stations: list[Station] = [
        (c.ns, c.bridge_port, f"{c.address}/32", None) for c in first.values()
    ]
    add_stations(underlay_ns, stations, created)
    for c in collectors:
        daemons.append(start_nfcapd(c, workdir))


def remove_collectors(
    gone: Sequence[Collector], staying: Sequence[Collector], daemons: list[Daemon]
) -> list[str]:
    """Stop the nfcapd of `gone` (they leave `daemons`) and delete the namespaces that no
    collector of `staying` shares; what could not be."""
    errors: list[str] = []
    names = {c.name for c in gone}
    for d in [d for d in daemons if d.role == ROLE and d.name in names]:
        if not stop_daemon(d):
            errors.append(f"nfcapd of {d.name} (pid {d.pid}) did not exit")
            continue
        daemons.remove(d)
    kept = set(collector_namespaces(staying))
    for ns in collector_namespaces(gone):
        error = None if ns in kept else delete_namespace(ns)
        if error is not None:
            errors.append(error)
    return errors


def collector_changes(
    running: Sequence[Collector], wanted: Sequence[Collector]
) -> tuple[list[Collector], list[Collector]]:
    """(to add, to remove) to go from the running collectors to the wanted ones."""
    return [c for c in wanted if c not in running], [c for c in running if c not in wanted]


def apply_collectors(
    underlay_ns: str,
    running: Sequence[Collector],
    wanted: Sequence[Collector],
    workdir: Path,
    daemons: list[Daemon],
) -> None:
    """`lab apply`: remove the collectors the spec dropped, then add the new ones."""
    add, gone = collector_changes(running, wanted)
    errors = remove_collectors(gone, wanted, daemons)
    if errors:
        raise LabError("; ".join(errors))
    present = {c.ns for c in running} & {c.ns for c in wanted}
    add_collectors(underlay_ns, [c for c in add if c.ns not in present], workdir, [], daemons)
    for c in [c for c in add if c.ns in present]:  # a new port on an address that stays
        daemons.append(start_nfcapd(c, workdir))
