"""`hercc lab flows`: what a lab collector's nfcapd received, read back with nfdump.

nfcapd keeps what it receives in memory until its file rotates
(hercc.lab.collectors_up.ROTATE_SECONDS). `collector_flows` first waits
for the first rotation after the moment it is called (a closed file written
after the end of the rotation slot that held that moment), so every datagram
nfcapd had read by then is in a closed file; nfcapd keeps running and loses
nothing. Then it reads every closed file: `nfdump -R DIR -o json` (the
records as nfdump prints them) and `nfdump -R DIR -I` (its totals, with
"Sequence failures": datagrams missing from an exporter's sequence); and
from nfcapd's log the "Bad Packets" (datagrams it could not decode) of every
rotation. `summarise` sums the records per 5-tuple for the table.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.diagnostics import LabError
from hercc.lab.collectors import Collector
from hercc.lab.collectors_up import ROLE, ROTATE_SECONDS, collector_dir, flows_dir
from hercc.lab.daemons import Daemon, alive
from hercc.lab.persistent.statefile import LabState
from hercc.sysio.process import run

CURRENT = "nfcapd.current."  # the file nfcapd writes; the others are closed
_BAD = re.compile(r"Bad Packets: (\d+)")
NFDUMP_TIMEOUT = 120.0


@dataclass(frozen=True)
class FlowRow:
    """The records of one 5-tuple, summed: what the table shows."""

    src: str
    dst: str
    proto: int
    src_port: int
    dst_port: int
    packets: int
    bytes: int
    first: str  # nfdump's local time, to the millisecond
    last: str
    records: int


@dataclass(frozen=True)
class CollectorFlows:
    collector: Collector
    running: bool  # nfcapd alive: without it, no rotation is waited for
    records: tuple[dict[str, Any], ...]  # nfdump -o json, as it prints them
    stats: dict[str, int | str]  # nfdump -I
    bad_packets: int  # nfcapd's log, every rotation

    @property
    def sequence_failures(self) -> int:
        value = self.stats.get("Sequence failures", 0)
        return value if isinstance(value, int) else 0


def closed_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.name.startswith("nfcapd.") and not p.name.startswith(CURRENT)
    )


def wait_rotation(
    directory: Path, since: float, alive: Callable[[], bool], seconds: float | None = None
) -> None:
    """Wait until nfcapd closed a file after the end of the slot that holds `since` (Unix time).

    nfcapd's slots are whole multiples of the interval in Unix time, and it
    closes a slot's file once the slot is over, so a file written at or after
    that end holds every datagram read before `since`.
    """
    end = (int(since) // ROTATE_SECONDS + 1) * ROTATE_SECONDS
    deadline = time.monotonic() + (seconds if seconds is not None else 3 * ROTATE_SECONDS + 5)
    while not any(p.stat().st_mtime >= end for p in closed_files(directory)):
        if not alive():
            raise LabError(f"nfcapd stopped before rotating its file in {directory}")
        if time.monotonic() > deadline:
            raise LabError(f"nfcapd did not rotate its file in {directory} in time")
        time.sleep(0.1)


def _nfdump(directory: Path, *args: str) -> str:
    if not closed_files(directory):
        return ""  # nfdump -I fails on a directory without a closed file
    argv = ["nfdump", "-R", str(directory), *args]
    return run(argv, timeout=NFDUMP_TIMEOUT, error=LabError).stdout


def read_records(directory: Path) -> tuple[dict[str, Any], ...]:
    """Every record of the closed files, as `nfdump -o json` prints it."""
    text = _nfdump(directory, "-o", "json")
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
    except ValueError:
        if "No matching flows" in text:
            return ()
        raise LabError(f"nfdump -R {directory}: unreadable JSON") from None
    return tuple(data)


def read_stats(directory: Path) -> dict[str, int | str]:
    """`nfdump -I`'s totals ("Flows", "Packets", "Bytes", "Sequence failures", ...)."""
    out: dict[str, int | str] = {}
    for line in _nfdump(directory, "-I").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            value = value.strip()
            out[key.strip()] = int(value) if value.isdigit() else value
    return out


def bad_packets(log: Path) -> int:
    """The "Bad Packets" nfcapd logged at each rotation, summed."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0
    return sum(int(n) for n in _BAD.findall(text))


def five_tuple(rec: dict[str, Any]) -> tuple[str, str, int, int, int]:
    """(src, dst, proto, src port, dst port) of an nfdump record; ICMP's type and code
    stand where nfdump shows them instead of ports."""
    src = str(rec.get("src4_addr") or rec.get("src6_addr") or "")
    dst = str(rec.get("dst4_addr") or rec.get("dst6_addr") or "")
    sport = int(rec.get("src_port", rec.get("icmp_type", 0)))
    dport = int(rec.get("dst_port", rec.get("icmp_code", 0)))
    return src, dst, int(rec.get("proto", 0)), sport, dport


def summarise(records: Sequence[dict[str, Any]]) -> list[FlowRow]:
    """The records summed per 5-tuple, sorted by bytes (most first), then 5-tuple."""
    rows: dict[tuple[str, str, int, int, int], FlowRow] = {}
    for rec in records:
        if rec.get("type", "FLOW") != "FLOW":
            continue
        key = five_tuple(rec)
        packets, octets = int(rec.get("in_packets", 0)), int(rec.get("in_bytes", 0))
        first, last = str(rec.get("first", "")), str(rec.get("last", ""))
        was = rows.get(key)
        if was is not None:
            packets, octets = packets + was.packets, octets + was.bytes
            first, last = min(first, was.first), max(last, was.last)
        count = 1 if was is None else was.records + 1
        rows[key] = FlowRow(*key, packets, octets, first, last, count)
    return sorted(
        rows.values(), key=lambda r: (-r.bytes, r.src, r.dst, r.proto, r.src_port, r.dst_port)
    )


def collector_flows(
    c: Collector, directory: Path, log: Path, alive: Callable[[], bool], since: float
) -> CollectorFlows:
    """What `c`'s nfcapd received up to `since` (Unix time) and after, from `directory`."""
    running = alive()
    if running:
        wait_rotation(directory, since, alive)
    return CollectorFlows(
        c, running, read_records(directory), read_stats(directory), bad_packets(log)
    )


def flows_of(state: LabState, collector: str | None, since: float) -> list[CollectorFlows]:
    """What the lab's collectors (or the one at `collector`: ADDR or ADDR:PORT) received."""
    if not state.collectors:
        raise LabError(f"lab {state.name!r} has no netflow collector (no `monitor netflow`)")
    chosen = [c for c in state.collectors if collector in (None, c.address, c.name)]
    if not chosen:
        known = ", ".join(c.name for c in state.collectors)
        raise LabError(f"lab {state.name!r} has no collector {collector} (it has {known})")
    workdir = Path(state.directory)
    out = []
    for c in chosen:
        daemons = [d for d in state.daemons if d.role == ROLE and d.name == c.name]

        def running(daemons: list[Daemon] = daemons) -> bool:
            return any(alive(d) for d in daemons)

        log = collector_dir(workdir, c) / "nfcapd.log"
        out.append(collector_flows(c, flows_dir(workdir, c), log, running, since))
    return out
