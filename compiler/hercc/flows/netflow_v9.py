"""NetFlow version 9 (RFC 3954): the header, the templates and the data records.

Header (20 bytes): version 9, count (template, options template and data
records in the packet), sysUptime (ms), unix_secs, sequence (export packets
sent before this one by this source id), source id.

Times: FIRST_SWITCHED and LAST_SWITCHED are sysUptime milliseconds. The
uptime scale is the monotonic clock shifted so that
unix_secs * 1000 - sysUptime + FIRST_SWITCHED is exactly the flow's Unix
milliseconds (`WallClock.unix_ms`): the header's sysUptime belongs to the
whole second unix_secs, not to the moment of sending, so the sub-second part
is not lost. Every uptime value is modulo 2^32, as the field is.

Sampling 1-in-N (N > 1) is declared by an options template (258; scope
System, the source id) with SAMPLING_INTERVAL (34) = N and
SAMPLING_ALGORITHM (35) = 1 (deterministic), and its options data record,
sent with the templates.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hercc.flows.packing import SET_HEADER, Encoder, Template, template_record
from hercc.flows.records import NS_PER_MS, FlowRecord

VERSION = 9
HEADER = struct.Struct("!HHIIII")
TEMPLATE_FLOWSET_ID = 0
OPTIONS_TEMPLATE_FLOWSET_ID = 1
IPV4_TEMPLATE_ID = 256
IPV6_TEMPLATE_ID = 257
SAMPLING_TEMPLATE_ID = 258

# Field types (RFC 3954 section 8) and the lengths used here.
IN_BYTES, IN_PKTS, PROTOCOL, TCP_FLAGS, L4_SRC_PORT, IPV4_SRC_ADDR = 1, 2, 4, 6, 7, 8
INPUT_SNMP, L4_DST_PORT, IPV4_DST_ADDR, OUTPUT_SNMP = 10, 11, 12, 14
LAST_SWITCHED, FIRST_SWITCHED, IPV6_SRC_ADDR, IPV6_DST_ADDR = 21, 22, 27, 28
SAMPLING_INTERVAL, SAMPLING_ALGORITHM, DIRECTION = 34, 35, 61
SCOPE_SYSTEM = 1

_COMMON = (
    (L4_SRC_PORT, 2), (L4_DST_PORT, 2), (PROTOCOL, 1), (TCP_FLAGS, 1), (IN_PKTS, 8), (IN_BYTES, 8),
    (FIRST_SWITCHED, 4), (LAST_SWITCHED, 4), (INPUT_SNMP, 4), (OUTPUT_SNMP, 4), (DIRECTION, 1),
)  # fmt: skip
IPV4 = Template(
    IPV4_TEMPLATE_ID,
    ((IPV4_SRC_ADDR, 4), (IPV4_DST_ADDR, 4), *_COMMON),
    struct.Struct("!4s4sHHBBQQIIIIB"),
)
IPV6 = Template(
    IPV6_TEMPLATE_ID,
    ((IPV6_SRC_ADDR, 16), (IPV6_DST_ADDR, 16), *_COMMON),
    struct.Struct("!16s16sHHBBQQIIIIB"),
)
SAMPLING_SCOPE = ((SCOPE_SYSTEM, 4),)
SAMPLING_FIELDS = ((SAMPLING_INTERVAL, 4), (SAMPLING_ALGORITHM, 1))
SAMPLING_RECORD = struct.Struct("!IIB")
DETERMINISTIC = 1
MOD32 = 1 << 32


class NetflowV9Encoder(Encoder):
    HEADER_SIZE = HEADER.size
    PAD_SETS = True

    IPV4, IPV6 = IPV4, IPV6

    def pack(self, template: Template, records: Sequence[FlowRecord]) -> bytes:
        pack_into, step = template.layout.pack_into, template.layout.size
        out = bytearray(step * len(records))
        offset, base = self.clock.offset_ns, self._base_ms()  # uptime_ms, inlined
        for at, (key, packets, octets, first_ns, last_ns, flags, _) in zip(
            range(0, len(out), step), records, strict=True
        ):
            egress = key.direction
            pack_into(
                out, at, key.src.packed, key.dst.packed, key.src_port, key.dst_port,
                key.protocol, flags & 0xFF, packets, octets,
                ((first_ns + offset) // NS_PER_MS - base) % MOD32,
                ((last_ns + offset) // NS_PER_MS - base) % MOD32,
                0 if egress else key.ifindex, key.ifindex if egress else 0, egress,
            )  # fmt: skip
        return bytes(out)

    def template_sets(self) -> tuple[bytes, int]:
        body = b"".join(template_record(t.template_id, t.fields) for t in (IPV4, IPV6))
        sets = SET_HEADER.pack(TEMPLATE_FLOWSET_ID, SET_HEADER.size + len(body)) + body
        if self.sampling == 1:
            return sets, 2
        lengths = (4 * len(SAMPLING_SCOPE), 4 * len(SAMPLING_FIELDS))  # in bytes, in v9
        option = struct.pack("!HHH", SAMPLING_TEMPLATE_ID, *lengths)
        option += b"".join(struct.pack("!HH", *f) for f in (*SAMPLING_SCOPE, *SAMPLING_FIELDS))
        option += b"\0" * ((-len(option)) % 4)
        size = SET_HEADER.size + len(option)
        return sets + SET_HEADER.pack(OPTIONS_TEMPLATE_FLOWSET_ID, size) + option, 3

    def options_data(self) -> tuple[int, bytes] | None:
        if self.sampling == 1:
            return None
        record = SAMPLING_RECORD.pack(self.domain_id, self.sampling, DETERMINISTIC)
        return SAMPLING_TEMPLATE_ID, record

    def header(self, *, records: int, length: int, now_ns: int) -> bytes:
        unix_secs = self.clock.unix_ms(now_ns) // 1000
        uptime = (unix_secs * 1000 - self._base_ms()) % MOD32
        sequence = self.packets_sent % MOD32
        return HEADER.pack(VERSION, records, uptime, unix_secs, sequence, self.domain_id)

    def uptime_ms(self, monotonic_ns: int) -> int:
        """The sysUptime value of a monotonic time (see the module's doc)."""
        return (self.clock.unix_ms(monotonic_ns) - self._base_ms()) % MOD32

    def _base_ms(self) -> int:
        # Unix ms at sysUptime 0: the clock offset floored, so uptimes stay >= 0 before the modulo.
        return self.clock.offset_ns // NS_PER_MS
