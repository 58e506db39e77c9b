"""An independent NetFlow v9 / IPFIX decoder for the tests, written from RFC 3954 and RFC 7011 with struct.

It shares nothing with hercc.flows: templates are learnt from the datagrams
themselves, and every data record comes out as {field id: int or bytes}.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

ADDRESS_FIELDS = {8, 12, 27, 28}  # kept as bytes


@dataclass
class Header:
    version: int
    count_or_length: int  # v9: records in the packet; IPFIX: message length
    time: int  # v9: sysUptime ms; IPFIX: export time (s)
    unix_secs: int  # v9 only (IPFIX: the export time again)
    sequence: int
    domain: int


@dataclass
class Decoded:
    header: Header
    templates: list[int] = field(default_factory=list)  # template ids defined in this datagram
    option_templates: list[int] = field(default_factory=list)
    records: list[tuple[int, dict[int, int | bytes]]] = field(
        default_factory=list
    )  # (template id, fields)
    set_lengths: list[int] = field(default_factory=list)


@dataclass
class Decoder:
    """Keeps the templates seen so far, like a collector (keyed by template id)."""

    templates: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def decode(self, data: bytes) -> Decoded:
        version = struct.unpack_from("!H", data)[0]
        if version == 9:
            _, count, uptime, secs, seq, source = struct.unpack_from("!HHIIII", data)
            out = Decoded(Header(9, count, uptime, secs, seq, source))
            offset = 20
        elif version == 10:
            _, length, export, seq, domain = struct.unpack_from("!HHIII", data)
            assert length == len(data), (
                f"IPFIX length {length} but the datagram has {len(data)} bytes"
            )
            out = Decoded(Header(10, length, export, export, seq, domain))
            offset = 16
        else:
            raise AssertionError(f"version {version}")
        while offset < len(data):
            set_id, set_len = struct.unpack_from("!HH", data, offset)
            assert set_len >= 4 and offset + set_len <= len(data), "set overruns the datagram"
            out.set_lengths.append(set_len)
            body = data[offset + 4 : offset + set_len]
            if (version, set_id) in ((9, 0), (10, 2)):
                self._templates(body, out)
            elif (version, set_id) == (9, 1):
                self._v9_options(body, out)
            elif (version, set_id) == (10, 3):
                self._ipfix_options(body, out)
            else:
                self._data(set_id, body, out)
            offset += set_len
        return out

    def _templates(self, body: bytes, out: Decoded) -> None:
        pos = 0
        while pos + 4 <= len(body):
            tid, count = struct.unpack_from("!HH", body, pos)
            pos += 4
            fields = [struct.unpack_from("!HH", body, pos + 4 * i) for i in range(count)]
            pos += 4 * count
            self.templates[tid] = fields
            out.templates.append(tid)

    def _v9_options(self, body: bytes, out: Decoded) -> None:
        tid, scope_len, option_len = struct.unpack_from("!HHH", body)
        n = (scope_len + option_len) // 4
        self.templates[tid] = [struct.unpack_from("!HH", body, 6 + 4 * i) for i in range(n)]
        out.option_templates.append(tid)

    def _ipfix_options(self, body: bytes, out: Decoded) -> None:
        tid, count, _scope_count = struct.unpack_from("!HHH", body)
        self.templates[tid] = [struct.unpack_from("!HH", body, 6 + 4 * i) for i in range(count)]
        out.option_templates.append(tid)

    def _data(self, tid: int, body: bytes, out: Decoded) -> None:
        fields = self.templates[tid]
        size = sum(length for _, length in fields)
        pos = 0
        while pos + size <= len(body):
            record: dict[int, int | bytes] = {}
            for fid, length in fields:
                raw = body[pos : pos + length]
                record[fid] = raw if fid in ADDRESS_FIELDS else int.from_bytes(raw, "big")
                pos += length
            out.records.append((tid, record))
        assert len(body) - pos < 4, "more than padding after the last record"
