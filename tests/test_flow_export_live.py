"""The export test: a known number of packets and bytes over 500 flows, through the real exporter
to nfcapd on 127.0.0.1, read back with `nfdump -o json`, and decoded a second time by tshark from
the same datagrams captured on lo. Both must show exactly the expected counts per 5-tuple, and
neither nfcapd nor tshark may see a sequence error.

The map is a fake (three snapshots: part of the counts, then all of them with some entries
evicted, then a flush), so the exported records go through the table's active and idle
timeouts and its eviction path; the expected counts are what the map last showed per entry.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hercc.diagnostics import OperationError
from hercc.flows.exporter import ExportConfig, Exporter, Snapshots
from hercc.flows.ipfix import IpfixEncoder
from hercc.flows.netflow_v9 import NetflowV9Encoder
from hercc.flows.packing import ExportPolicy
from hercc.flows.records import Direction, FlowCounters, FlowKey, WallClock
from hercc.flows.sender import UdpSender
from hercc.sysio import process

MISSING = [tool for tool in ("nfcapd", "nfdump", "tshark") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")

S = 1_000_000_000
FLOWS = 500
FiveTuple = tuple[str, str, int, int, int]
Counts = dict[FiveTuple, list[int]]  # packets, bytes, first ms, last ms


def five_tuple(key: FlowKey) -> FiveTuple:
    return (str(key.src), str(key.dst), key.src_port, key.dst_port, key.protocol)


def make_flows(
    seed: int, t0: int
) -> tuple[dict[FlowKey, FlowCounters], dict[FlowKey, FlowCounters]]:
    """The map at two polls: (t0 + 120 s: part of each flow), (t0 + 200 s: all of it, 10% evicted)."""
    rng = random.Random(seed)
    early: dict[FlowKey, FlowCounters] = {}
    late: dict[FlowKey, FlowCounters] = {}
    for i in range(FLOWS):
        v6 = i % 5 < 2
        proto = rng.choice((6, 17, 58 if v6 else 1))
        src = ipaddress.ip_address(f"fd00:10::{i + 1:x}" if v6 else f"10.{i // 250}.{i % 250}.1")
        dst = ipaddress.ip_address("fd00:20::1" if v6 else "192.168.7.7")
        ports = (
            (0, 0) if proto in (1, 58) else (rng.randrange(1024, 65536), rng.choice((22, 53, 443)))
        )
        key = FlowKey(src, dst, *ports, proto, rng.randrange(2, 9), rng.choice(tuple(Direction)))
        packets = rng.randrange(1, 200_000)
        octets = packets * rng.randrange(40, 1500) + rng.randrange(packets)
        first = t0 + rng.randrange(0, 100 * S)
        flags = rng.randrange(256) if proto == 6 else 0
        # At the first poll, flows that began 60 s before are due (active timeout), none is idle.
        half, early_last = packets // 2, t0 + rng.randrange(110 * S, 120 * S)
        if half:
            early[key] = FlowCounters(half, octets * half // packets, first, early_last, flags)
        if rng.random() < 0.1 and half:
            continue  # the LRU dropped it between the polls: what the early poll saw is what counts
        # At the second, flows quiet for 15 s are idle, the others due again (active).
        last = t0 + rng.randrange(121 * S, 200 * S)
        late[key] = FlowCounters(packets, octets, first, last, flags)
    return early, late


def expected_counts(
    early: dict[FlowKey, FlowCounters], late: dict[FlowKey, FlowCounters], wall: WallClock
) -> Counts:
    out: Counts = {}
    for key in early.keys() | late.keys():
        last = late.get(key) or early[key]
        out[five_tuple(key)] = [
            last.packets,
            last.octets,
            wall.unix_ms(last.first_ns),
            wall.unix_ms(last.last_ns),
        ]
    return out


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def logged(log: Path, text: str) -> Callable[[], bool]:
    return lambda: text in log.read_text(errors="replace")


@contextmanager
def daemon(
    argv: list[str], log: Path, ready: Callable[[], bool], stop: signal.Signals
) -> Iterator[None]:
    """Start argv, wait until `ready()` (at most 15 s), and on leaving stop it by its PID (bounded)."""
    proc = process.start(argv, log=log, env=os.environ, error=OperationError)
    try:
        deadline = time.monotonic() + 15
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{argv[0]} is not ready:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(stop)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def capture(port: int, pcap: Path, log: Path) -> Iterator[None]:
    """tshark capturing on lo what goes to `port` (at most 60 s), stopped by SIGINT.

    "Capturing on" is printed before the capture is live, so tshark is ready only once it
    shows (-P) a probe datagram sent to a second port that the filter takes too.
    """
    probe = free_udp_port()
    argv = ["tshark", "-i", "lo", "-f", f"udp port {port} or udp port {probe}", "-l", "-P"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:

        def ready() -> bool:
            s.sendto(b"probe", ("127.0.0.1", probe))
            return logged(log, f"{probe} Len=5")()

        with daemon([*argv, "-a", "duration:60", "-w", str(pcap)], log, ready, signal.SIGINT):
            yield


def run(argv: list[str]) -> str:
    return process.run(argv, timeout=60, error=OperationError).stdout


def nfdump_counts(path: Path) -> Counts:
    out: Counts = defaultdict(lambda: [0, 0, 2**63, 0])
    for rec in json.loads(run(["nfdump", "-r", str(path), "-o", "json"]) or "[]"):
        src = rec.get("src4_addr") or rec["src6_addr"]
        dst = rec.get("dst4_addr") or rec["dst6_addr"]
        # ICMP records show icmp_type and icmp_code instead of ports (ours are 0 and 0).
        ports = (rec.get("src_port", 0), rec.get("dst_port", rec.get("icmp_type", 0)))
        row = out[(src, dst, *ports, rec["proto"])]
        row[0] += rec["in_packets"]
        row[1] += rec["in_bytes"]
        # nfdump prints local time, as naive datetime.timestamp() reads it.
        row[2] = min(
            row[2], round(datetime.datetime.fromisoformat(rec["first"]).timestamp() * 1000)
        )
        row[3] = max(row[3], round(datetime.datetime.fromisoformat(rec["last"]).timestamp() * 1000))
    return dict(out)


def walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            walk(value, visit)


def tshark_frames(pcap: Path, port: int) -> list[Any]:
    argv = ["tshark", "-r", str(pcap), "-d", f"udp.port=={port},cflow", "-T", "json"]
    frames = json.loads(run([*argv, "--no-duplicate-keys"]))
    return [f for f in frames if "cflow" in f["_source"]["layers"]]  # not the probes


def tshark_counts(pcap: Path, port: int) -> tuple[int, dict[FiveTuple, list[int]], list[str]]:
    """Frames, packets and bytes per 5-tuple, and every sequence number tshark flagged."""
    frames = tshark_frames(pcap, port)
    counts: dict[FiveTuple, list[int]] = defaultdict(lambda: [0, 0])
    flagged: list[str] = []

    def visit(d: dict[str, Any]) -> None:
        if "cflow.sequence_analysis.expected_sn" in d:
            flagged.append(
                f"{d.get('cflow.sequence')} (expected {d['cflow.sequence_analysis.expected_sn']})"
            )
        if "cflow.packets" in d:
            src = d.get("cflow.srcaddr") or d["cflow.srcaddrv6"]
            dst = d.get("cflow.dstaddr") or d["cflow.dstaddrv6"]
            row = counts[
                (
                    src,
                    dst,
                    int(d["cflow.srcport"]),
                    int(d["cflow.dstport"]),
                    int(d["cflow.protocol"]),
                )
            ]
            row[0] += int(d["cflow.packets"])
            row[1] += int(d["cflow.octets"])

    for frame in frames:
        walk(frame["_source"]["layers"].get("cflow"), visit)
    return len(frames), dict(counts), flagged


def export(
    protocol: str,
    port: int,
    snapshots: list[dict[FlowKey, FlowCounters]],
    t0: int,
    wall: WallClock,
) -> int:
    """Run the exporter over the two snapshots (at t0 + 120 s and + 200 s) and a flush;
    the number of datagrams it sent."""
    maps = iter(snapshots)
    now = [t0 + 120 * S]
    config = ExportConfig(protocol, 60_000, 15_000, sampling=1, domain_id=4242)
    sender = UdpSender(f"127.0.0.1:{port}")
    try:
        source = Snapshots(lambda: ((k, [v]) for k, v in next(maps).items()))
        exporter = Exporter(config, source, [sender], clock=lambda: now[0], wall=wall)
        first = exporter.poll()
        now[0] = t0 + 200 * S
        second = exporter.poll()
        last = exporter.flush()
    finally:
        sender.close()
    assert second.table.evicted == len(snapshots[0].keys() - snapshots[1].keys()) > 0
    reasons = {r.reason.name for r in first.records + second.records}
    assert reasons == {"ACTIVE_TIMEOUT", "IDLE_TIMEOUT", "LACK_OF_RESOURCES"}
    return len(first.datagrams) + len(second.datagrams) + len(last.datagrams)


@pytest.mark.parametrize("protocol", ["v9", "ipfix"])
def test_nfcapd_and_tshark_see_exactly_the_exported_counts(protocol: str, tmp_path: Path) -> None:
    wall = WallClock.now()
    t0 = time.monotonic_ns() - 600 * S  # the flows happened over the last ten minutes
    early, late = make_flows(20261130, t0)
    expected = expected_counts(early, late, wall)
    assert len(expected) == FLOWS and sum(v[0] for v in expected.values()) > 10_000_000
    port, flows_dir, pcap = free_udp_port(), tmp_path / "nfcapd", tmp_path / "export.pcap"
    flows_dir.mkdir()
    nfcapd = f"nfcapd -w {flows_dir} -b 127.0.0.1 -p {port} -t 60 -I hercc".split()
    with (
        daemon(
            nfcapd,
            tmp_path / "nfcapd.log",
            logged(tmp_path / "nfcapd.log", "Startup"),
            signal.SIGTERM,
        ),
        capture(port, pcap, tmp_path / "tshark.log"),
    ):
        sent = export(protocol, port, [early, late], t0, wall)
        time.sleep(1)  # both read their sockets; then SIGINT and SIGTERM end them
    log = (tmp_path / "nfcapd.log").read_text()
    (flow_file,) = flows_dir.glob("nfcapd.2*")  # SIGTERM renamed nfcapd.current.* to its final name

    stats = run(["nfdump", "-r", str(flow_file), "-I"])
    assert "Sequence failures: 0" in stats, stats
    assert "Sequence Errors: 0, Bad Packets: 0" in log, log
    assert f"packets: {sent}," in run(["nfdump", "-E", str(flow_file)])  # every datagram arrived
    got = nfdump_counts(flow_file)
    assert got == expected

    frames, decoded, flagged = tshark_counts(pcap, port)
    assert frames == sent and flagged == []
    assert decoded == {k: v[:2] for k, v in expected.items()}


def test_tshark_reads_the_sampling_declarations(tmp_path: Path) -> None:
    port, pcap = free_udp_port(), tmp_path / "sampling.pcap"
    sender = UdpSender(f"127.0.0.1:{port}")
    try:
        with capture(port, pcap, tmp_path / "tshark.log"):
            # Two observation domains: tshark keeps templates per exporter and domain.
            for kind, domain in ((NetflowV9Encoder, 9), (IpfixEncoder, 10)):
                encoder = kind(
                    domain_id=domain, clock=WallClock.now(), sampling=100, policy=ExportPolicy()
                )
                for datagram in encoder.encode([], time.monotonic_ns()):
                    sender.send(datagram.payload)
            time.sleep(1)
    finally:
        sender.close()
    fields: dict[str, str] = {}

    def visit(d: dict[str, Any]) -> None:
        fields.update(
            {k: v for k, v in d.items() if k.startswith(("cflow.sampling", "cflow.selector"))}
        )

    for frame in tshark_frames(pcap, port):
        walk(frame["_source"]["layers"].get("cflow"), visit)
    assert fields == {
        "cflow.sampling_interval": "100",  # v9: SAMPLING_INTERVAL
        "cflow.sampling_algorithm": "1",  # v9: deterministic
        "cflow.selector_algorithm": "1",  # IPFIX: systematic count-based
        "cflow.sampling_packet_interval": "1",
        "cflow.sampling_packet_space": "99",
    }
