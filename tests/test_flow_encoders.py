"""The NetFlow v9 and IPFIX encoders, read back by the independent decoder of tests/flowdecode.py."""

from __future__ import annotations

import ipaddress
import random

import pytest

from hercc.flows.ipfix import IpfixEncoder
from hercc.flows.netflow_v9 import NetflowV9Encoder
from hercc.flows.packing import Encoder, ExportPolicy
from hercc.flows.records import Direction, EndReason, FlowKey, FlowRecord, WallClock
from tests.flowdecode import Decoder

CLOCK = WallClock(offset_ns=1_796_000_000_123_456_789 - 5_000_000_000_000)  # wall at mono 5e12 ns
NOW = 5_000_000_000_000 + 987_654_321
DOMAIN = 0xC0FFEE


def v4(
    i: int, *, packets: int = 10, octets: int = 840, direction: Direction = Direction.INGRESS
) -> FlowRecord:
    key = FlowKey(
        ipaddress.ip_address(f"10.1.{i // 256}.{i % 256}"), ipaddress.ip_address("192.0.2.7"),
        40000 + i, 443, 6, 7, direction,
    )  # fmt: skip
    return FlowRecord(
        key, packets, octets, NOW - 3_000_000_001, NOW - 1_000_499_999, 0x1B, EndReason.IDLE_TIMEOUT
    )


def v6(i: int, *, packets: int = 3, octets: int = 3 * 1280) -> FlowRecord:
    key = FlowKey(
        ipaddress.ip_address(f"2001:db8::{i + 1:x}"), ipaddress.ip_address("2001:db8:ffff::1"),
        5353, 53, 17, 9, Direction.EGRESS,
    )  # fmt: skip
    return FlowRecord(
        key, packets, octets, NOW - 10_000_000, NOW - 2_000_000, 0, EndReason.ACTIVE_TIMEOUT
    )


def make(kind: type[Encoder], *, sampling: int = 1, policy: ExportPolicy | None = None) -> Encoder:
    return kind(domain_id=DOMAIN, clock=CLOCK, sampling=sampling, policy=policy or ExportPolicy())


ENCODERS = [NetflowV9Encoder, IpfixEncoder]


@pytest.mark.parametrize("kind", ENCODERS)
def test_round_trip_every_field(kind: type[Encoder]) -> None:
    dec = Decoder()
    records = [v4(1), v6(2), v4(3, direction=Direction.EGRESS)]
    (dg,) = make(kind).encode(records, NOW)
    got = dec.decode(dg.payload)
    assert got.templates == [256, 257] and got.header.domain == DOMAIN and got.header.sequence == 0
    by_src = {(r.get(8) or r.get(27)): (tid, r) for tid, r in got.records}
    for rec in records:
        tid, r = by_src[rec.key.src.packed]
        assert tid == (257 if rec.key.ipv6 else 256)
        assert r[28 if rec.key.ipv6 else 12] == rec.key.dst.packed
        assert (r[7], r[11], r[4], r[6]) == (
            rec.key.src_port,
            rec.key.dst_port,
            rec.key.protocol,
            rec.tcp_flags,
        )
        assert (r[2], r[1]) == (rec.packets, rec.octets)
        ingress = rec.key.direction == Direction.INGRESS
        assert (r[10], r[14], r[61]) == ((7, 0, 0) if ingress else (0, rec.key.ifindex, 1))
        if kind is IpfixEncoder:
            assert (r[152], r[153]) == (CLOCK.unix_ms(rec.first_ns), CLOCK.unix_ms(rec.last_ns))
            assert r[136] == int(rec.reason)
        else:
            # What a collector computes: unix_secs * 1000 - sysUptime + FIRST_SWITCHED, to the ms.
            base = got.header.unix_secs * 1000 - got.header.time
            assert (base + r[22], base + r[21]) == (
                CLOCK.unix_ms(rec.first_ns),
                CLOCK.unix_ms(rec.last_ns),
            )
    assert got.header.unix_secs == CLOCK.unix_ms(NOW) // 1000


def test_v9_header_counts_records_and_pads_flowsets() -> None:
    (dg,) = make(NetflowV9Encoder).encode([v4(1), v4(2), v6(3)], NOW)
    got = Decoder().decode(dg.payload)
    assert got.header.count_or_length == 2 + 3  # two template records and three data records
    assert all(n % 4 == 0 for n in got.set_lengths)


def test_ipfix_length_and_no_padding() -> None:
    (dg,) = make(IpfixEncoder).encode([v4(1)], NOW)
    got = Decoder().decode(dg.payload)
    assert got.header.count_or_length == len(dg.payload)
    assert got.set_lengths[-1] == 4 + 4 + 4 + 2 + 2 + 1 + 2 + 8 + 8 + 8 + 8 + 4 + 4 + 1 + 1


@pytest.mark.parametrize("kind", ENCODERS)
def test_split_under_the_size_limit_and_sequence_numbers(kind: type[Encoder]) -> None:
    rng = random.Random(7)
    records = [v4(i) if rng.random() < 0.6 else v6(i) for i in range(400)]
    enc, dec = make(kind), Decoder()
    first_call = enc.encode(records[:250], NOW)
    datagrams = first_call + enc.encode(records[250:], NOW + 1)
    assert all(len(d.payload) <= 1400 for d in datagrams) and len(datagrams) >= 18
    seen, records_before = [], 0
    for n, dg in enumerate(datagrams):
        got = dec.decode(dg.payload)
        # v9 counts export packets, IPFIX counts data records sent before this message.
        assert got.header.sequence == (n if kind is NetflowV9Encoder else records_before)
        records_before += len(got.records)
        seen += [r[7] for _, r in got.records]
    assert sorted(seen) == sorted(r.key.src_port for r in records)
    assert enc.packets_sent == len(datagrams) and enc.records_sent == 400
    # Full datagrams leave no room for another record of either family.
    assert all(len(d.payload) > 1400 - 71 - 4 - 3 for d in first_call[:-1])


@pytest.mark.parametrize("kind", ENCODERS)
def test_templates_refresh_by_packets_and_by_time(kind: type[Encoder]) -> None:
    enc = make(kind, policy=ExportPolicy(template_packets=3, template_interval_ms=10_000))
    flags = [d.with_templates for i in range(7) for d in enc.encode([v4(i)], NOW)]
    assert flags == [True, False, False, True, False, False, True]
    assert not enc.encode([v4(9)], NOW + 9_999_000_000)[0].with_templates
    assert enc.encode([v4(9)], NOW + 10_000_000_000)[
        0
    ].with_templates  # 10 s after the last templates


@pytest.mark.parametrize("kind", ENCODERS)
def test_templates_alone_when_due_and_nothing_to_send(kind: type[Encoder]) -> None:
    enc = make(kind)
    (first,) = enc.encode([], NOW)
    assert first.with_templates and first.data_records == 0
    assert Decoder().decode(first.payload).templates == [256, 257]
    assert enc.encode([], NOW + 1) == []


def test_v9_sampling_options() -> None:
    dec = Decoder()
    (dg,) = make(NetflowV9Encoder, sampling=100).encode([v4(1)], NOW)
    got = dec.decode(dg.payload)
    assert got.option_templates == [258] and got.header.count_or_length == 3 + 1 + 1
    assert dec.templates[258] == [(1, 4), (34, 4), (35, 1)]
    options = [r for tid, r in got.records if tid == 258]
    assert options == [{1: DOMAIN, 34: 100, 35: 1}]


def test_ipfix_sampling_options_count_in_the_sequence() -> None:
    enc, dec = make(IpfixEncoder, sampling=100, policy=ExportPolicy(template_packets=2)), Decoder()
    datagrams = [d for i in range(3) for d in enc.encode([v4(i)], NOW)]
    got = [dec.decode(d.payload) for d in datagrams]
    assert dec.templates[258] == [(149, 4), (304, 2), (305, 4), (306, 4)]
    assert [r for tid, r in got[0].records if tid == 258] == [
        {149: DOMAIN, 304: 1, 305: 1, 306: 99}
    ]
    # The options data record is a data record: it counts in the next sequence number.
    assert [g.header.sequence for g in got] == [0, 2, 3]


def test_a_record_that_cannot_fit_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        make(IpfixEncoder, policy=ExportPolicy(max_datagram=60)).encode([v4(1), v4(2)], NOW)
