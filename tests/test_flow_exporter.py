"""The export loop with a fake map, a fake clock and recording senders; the UDP sender on loopback."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.flows.exporter import ExportConfig, Exporter, Snapshots, domain_id
from hercc.flows.records import Direction, FlowCounters, FlowKey, WallClock
from hercc.flows.sender import UdpSender, parse_collector
from tests.flowdecode import Decoder

S = 1_000_000_000
KEY = FlowKey(
    ipaddress.ip_address("10.0.0.1"),
    ipaddress.ip_address("10.0.0.2"),
    1,
    2,
    17,
    3,
    Direction.INGRESS,
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)

    def close(self) -> None:
        pass


def test_config_from_the_ir() -> None:
    netflow = ir.Netflow("192.0.2.1:2055", "v9", 60_000, 15_000, 10)
    config = ExportConfig.from_ir(netflow, node="alpha")
    assert (config.protocol, config.active_timeout_ms, config.idle_timeout_ms, config.sampling) == (
        "v9", 60_000, 15_000, 10,
    )  # fmt: skip
    assert config.domain_id == domain_id("alpha") != domain_id("beta")
    assert config.collectors == ("192.0.2.1:2055",)
    (sender,) = config.open_senders()
    sender.close()


def test_poll_sends_the_same_datagrams_to_every_collector_and_flush_ends() -> None:
    counters = [FlowCounters(3, 300, 10 * S, 11 * S, 0)]
    now = [12 * S]
    a, b = Recorder(), Recorder()
    config = ExportConfig("ipfix", 60_000, 15_000, 1, domain_id=7)
    source = Snapshots(lambda: [(KEY, counters)])
    exporter = Exporter(config, source, [a, b], clock=lambda: now[0], wall=WallClock(0))
    first = exporter.poll()
    assert first.records == () and len(first.datagrams) == 1  # the templates
    now[0] = 30 * S
    (rec,) = exporter.poll().records
    assert (rec.packets, rec.octets) == (3, 300)
    assert exporter.flush().records == ()
    assert a.sent == b.sent and len(a.sent) == 2
    dec = Decoder()
    assert [r[2] for d in a.sent for _, r in dec.decode(d).records] == [3]


def test_run_polls_until_stopped_then_flushes() -> None:
    counters = [FlowCounters(5, 500, 1 * S, 2 * S, 0)]
    stops = iter([False, False, True])
    sent = Recorder()
    config = ExportConfig("v9", 60_000, 15_000, 1, domain_id=7, poll_interval_ms=250)
    reads: list[int] = []

    def entries() -> list[tuple[FlowKey, list[FlowCounters]]]:
        reads.append(1)
        return [(KEY, counters)]

    exporter = Exporter(config, Snapshots(entries), [sent], clock=lambda: 3 * S)
    waits: list[float] = []
    polls: list[int] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return next(stops)

    stats = exporter.run(wait=wait, polled=lambda r: polls.append(len(r.records))).table
    assert waits == [0.25, 0.25, 0.25] and stats.records == 1
    assert len(polls) == 3 and len(reads) == 4  # a source that cannot tell is read every time
    dec = Decoder()
    assert sum(r[2] for d in sent.sent for _, r in dec.decode(d).records) == 5


def test_run_exports_what_the_map_counted_after_the_last_poll() -> None:
    """Found by bench/flows_vs_softflowd.py: stopping between two polls lost the packets
    counted since the first (2 to 5 of every 10-packet UDP flow)."""
    snapshots = iter([FlowCounters(5, 500, 1 * S, 2 * S, 0), FlowCounters(8, 800, 1 * S, 3 * S, 0)])
    sent = Recorder()
    config = ExportConfig("v9", 60_000, 15_000, 1, domain_id=7)
    source = Snapshots(lambda: [(KEY, [next(snapshots)])])
    exporter = Exporter(config, source, [sent], clock=lambda: 4 * S)
    stats = exporter.run(wait=lambda _: True).table
    dec = Decoder()
    assert sum(r[2] for d in sent.sent for _, r in dec.decode(d).records) == 8
    assert stats.records == 1


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("192.0.2.1:2055", ("192.0.2.1", 2055)), ("[2001:db8::1]:4739", ("2001:db8::1", 4739)),
     ("flows.example.com:9995", ("flows.example.com", 9995))],
)  # fmt: skip
def test_parse_collector(text: str, parsed: tuple[str, int]) -> None:
    assert parse_collector(text) == parsed


@pytest.mark.parametrize("text", ["192.0.2.1", ":2055", "host:0", "host:70000", "host:x"])
def test_parse_collector_refuses(text: str) -> None:
    with pytest.raises(OperationError, match="is not host:port"):
        parse_collector(text)


def test_udp_sender_loses_nothing_after_a_port_unreachable() -> None:
    """The first datagram finds no collector (ICMP port unreachable comes back); the collector
    then starts, and the next datagram reaches it: the ICMP error does not eat it."""
    port = free_port()
    sender = UdpSender(f"127.0.0.1:{port}")
    try:
        sender.send(b"nobody hears this")
        time.sleep(0.1)  # the ICMP error is back
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
            rx.bind(("127.0.0.1", port))
            rx.settimeout(5)
            for n in range(3):
                sender.send(b"datagram %d" % n)
            assert [rx.recv(100) for _ in range(3)] == [b"datagram 0", b"datagram 1", b"datagram 2"]
    finally:
        sender.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
