"""IPFIX (RFC 7011, information elements of RFC 7012 and IANA's registry).

Message header (16 bytes): version 10, length, export time (Unix seconds),
sequence number (data records sent before this message in this
observation domain, options data records included, modulo 2^32), observation
domain id. Sets: 2 templates, 3 options templates, 256 and up data. No
padding is sent.

Times are flowStartMilliseconds (152) and flowEndMilliseconds (153), Unix
milliseconds. flowEndReason (136) says why the record was sent.

Sampling 1-in-N (N > 1) is declared by an options template (258; scope
observationDomainId) with selectorAlgorithm (304) = 1 (systematic
count-based), samplingPacketInterval (305) = 1 and samplingPacketSpace (306)
= N - 1 (RFC 5477: one packet selected, then N - 1 skipped), and its options
data record, sent with the templates.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hercc.flows.packing import SET_HEADER, Encoder, Template, template_record
from hercc.flows.records import NS_PER_MS, FlowRecord

VERSION = 10
HEADER = struct.Struct("!HHIII")
TEMPLATE_SET_ID = 2
OPTIONS_TEMPLATE_SET_ID = 3
IPV4_TEMPLATE_ID = 256
IPV6_TEMPLATE_ID = 257
SAMPLING_TEMPLATE_ID = 258

# Information element ids (IANA IPFIX registry) and the lengths used here.
OCTET_DELTA_COUNT, PACKET_DELTA_COUNT, PROTOCOL_IDENTIFIER, TCP_CONTROL_BITS = 1, 2, 4, 6
SOURCE_TRANSPORT_PORT, SOURCE_IPV4_ADDRESS, INGRESS_INTERFACE = 7, 8, 10
DESTINATION_TRANSPORT_PORT, DESTINATION_IPV4_ADDRESS, EGRESS_INTERFACE = 11, 12, 14
SOURCE_IPV6_ADDRESS, DESTINATION_IPV6_ADDRESS, FLOW_DIRECTION = 27, 28, 61
FLOW_END_REASON, OBSERVATION_DOMAIN_ID = 136, 149
FLOW_START_MILLISECONDS, FLOW_END_MILLISECONDS = 152, 153
SELECTOR_ALGORITHM, SAMPLING_PACKET_INTERVAL, SAMPLING_PACKET_SPACE = 304, 305, 306
SYSTEMATIC_COUNT_BASED = 1

_COMMON = (
    (SOURCE_TRANSPORT_PORT, 2), (DESTINATION_TRANSPORT_PORT, 2), (PROTOCOL_IDENTIFIER, 1),
    (TCP_CONTROL_BITS, 2), (PACKET_DELTA_COUNT, 8), (OCTET_DELTA_COUNT, 8),
    (FLOW_START_MILLISECONDS, 8), (FLOW_END_MILLISECONDS, 8), (INGRESS_INTERFACE, 4),
    (EGRESS_INTERFACE, 4), (FLOW_DIRECTION, 1), (FLOW_END_REASON, 1),
)  # fmt: skip
IPV4 = Template(
    IPV4_TEMPLATE_ID,
    ((SOURCE_IPV4_ADDRESS, 4), (DESTINATION_IPV4_ADDRESS, 4), *_COMMON),
    struct.Struct("!4s4sHHBHQQQQIIBB"),
)
IPV6 = Template(
    IPV6_TEMPLATE_ID,
    ((SOURCE_IPV6_ADDRESS, 16), (DESTINATION_IPV6_ADDRESS, 16), *_COMMON),
    struct.Struct("!16s16sHHBHQQQQIIBB"),
)
SAMPLING_SCOPE = ((OBSERVATION_DOMAIN_ID, 4),)
SAMPLING_FIELDS = (
    (SELECTOR_ALGORITHM, 2),
    (SAMPLING_PACKET_INTERVAL, 4),
    (SAMPLING_PACKET_SPACE, 4),
)
SAMPLING_RECORD = struct.Struct("!IHII")
MOD32 = 1 << 32


class IpfixEncoder(Encoder):
    HEADER_SIZE = HEADER.size
    PAD_SETS = False

    IPV4, IPV6 = IPV4, IPV6

    def pack(self, template: Template, records: Sequence[FlowRecord]) -> bytes:
        pack_into, step = template.layout.pack_into, template.layout.size
        out = bytearray(step * len(records))
        offset = self.clock.offset_ns  # unix_ms, inlined: this runs for every record
        for at, (key, packets, octets, first_ns, last_ns, flags, reason) in zip(
            range(0, len(out), step), records, strict=True
        ):
            egress = key.direction
            pack_into(
                out, at, key.src.packed, key.dst.packed, key.src_port, key.dst_port,
                key.protocol, flags, packets, octets,
                (first_ns + offset) // NS_PER_MS, (last_ns + offset) // NS_PER_MS,
                0 if egress else key.ifindex, key.ifindex if egress else 0, egress, reason,
            )  # fmt: skip
        return bytes(out)

    def template_sets(self) -> tuple[bytes, int]:
        body = b"".join(template_record(t.template_id, t.fields) for t in (IPV4, IPV6))
        sets = SET_HEADER.pack(TEMPLATE_SET_ID, SET_HEADER.size + len(body)) + body
        if self.sampling == 1:
            return sets, 2
        all_fields = (*SAMPLING_SCOPE, *SAMPLING_FIELDS)  # counted in fields, in IPFIX
        option = struct.pack("!HHH", SAMPLING_TEMPLATE_ID, len(all_fields), len(SAMPLING_SCOPE))
        option += b"".join(struct.pack("!HH", *f) for f in all_fields)
        size = SET_HEADER.size + len(option)
        return sets + SET_HEADER.pack(OPTIONS_TEMPLATE_SET_ID, size) + option, 3

    def options_data(self) -> tuple[int, bytes] | None:
        if self.sampling == 1:
            return None
        record = SAMPLING_RECORD.pack(self.domain_id, SYSTEMATIC_COUNT_BASED, 1, self.sampling - 1)
        return SAMPLING_TEMPLATE_ID, record

    def header(self, *, records: int, length: int, now_ns: int) -> bytes:
        export_time = self.clock.unix_ms(now_ns) // 1000
        return HEADER.pack(VERSION, length, export_time, self.records_sent % MOD32, self.domain_id)
