"""What NetFlow v9 and IPFIX share: templates, their refresh, and records split into datagrams.

Both protocols send a header, then sets (v9: FlowSets) of a 4-byte set
header (id, length) and records. An encoder (`netflow_v9`, `ipfix`) says how
its header, its template sets and its records look; `Encoder.encode` fills
datagrams up to `ExportPolicy.max_datagram` bytes, starting a new one when
the next record would not fit, and puts the templates (and the sampling
options data) in front of a datagram's records when they are due: in the
first datagram, then again after `template_packets` datagrams or
`template_interval_ms`, whichever comes first (UDP loses datagrams and
collectors restart, so templates are repeated on both counts). When
templates are due and there is nothing to export, a datagram of templates
alone is sent.

Records are packed in bulk: all those of one template into one buffer
(`Encoder.pack`, `struct.pack_into`), which datagrams then take in slices:
all records of a template have its size, so how many fit is a division.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from hercc.flows.records import NS_PER_MS, FlowRecord, WallClock

SET_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class ExportPolicy:
    """How datagrams are cut and templates repeated.

    1400 bytes stays under a 1500-byte path with IPv6, UDP and a tunnel or
    two around it, so export datagrams are never fragmented.
    """

    max_datagram: int = 1400
    template_packets: int = 20
    template_interval_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class Template:
    """A data template: its id, its (field id, length) pairs, and the struct that packs a record."""

    template_id: int
    fields: tuple[tuple[int, int], ...]
    layout: struct.Struct

    def __post_init__(self) -> None:
        if sum(length for _, length in self.fields) != self.layout.size:
            raise ValueError(f"template {self.template_id}: field lengths do not match the layout")


@dataclass(frozen=True, slots=True)
class Datagram:
    """One export datagram, and what it holds (for statistics and tests)."""

    payload: bytes
    data_records: int
    with_templates: bool


class Encoder(ABC):
    """One export stream (one source id / observation domain): it numbers what it sends."""

    def __init__(
        self, *, domain_id: int, clock: WallClock, sampling: int, policy: ExportPolicy
    ) -> None:
        self.domain_id = domain_id
        self.clock = clock
        self.sampling = sampling
        self.policy = policy
        self.packets_sent = 0
        self.records_sent = 0  # data records, the options data records included
        self._since_templates: int | None = None  # datagrams since templates; None: never sent
        self._templates_at_ns = 0

    HEADER_SIZE: int
    PAD_SETS: bool  # v9 pads each FlowSet to 4 bytes; IPFIX sends no padding

    IPV4: Template
    IPV6: Template

    @abstractmethod
    def pack(self, template: Template, records: Sequence[FlowRecord]) -> bytes:
        """These records (all of this template's family) packed one after the other."""

    @abstractmethod
    def template_sets(self) -> tuple[bytes, int]:
        """The template (and options template) sets, and how many template records they hold."""

    @abstractmethod
    def options_data(self) -> tuple[int, bytes] | None:
        """The options data record declaring the sampling (its template id, the record), if any."""

    @abstractmethod
    def header(self, *, records: int, length: int, now_ns: int) -> bytes:
        """The datagram's header: `records` counts template and data records; `length` in bytes."""

    def templates_due(self, now_ns: int) -> bool:
        if self._since_templates is None:
            return True
        return (
            self._since_templates >= self.policy.template_packets
            or now_ns - self._templates_at_ns >= self.policy.template_interval_ms * NS_PER_MS
        )

    def encode(self, records: Sequence[FlowRecord], now_ns: int) -> list[Datagram]:
        """The datagrams that carry these records, at monotonic time now_ns."""
        # Grouped by template (IPv4 first), so that a datagram holds one set per template.
        v4 = [r for r in records if r.key.src.version == 4]
        v6 = [r for r in records if r.key.src.version == 6] if len(v4) < len(records) else []
        groups = [(t, self.pack(t, rs), len(rs)) for t, rs in ((self.IPV4, v4), (self.IPV6, v6))]
        pending = [g for g in groups if g[2]]
        out: list[Datagram] = []
        g = at = 0  # the next record: the group, and its place in it
        while g < len(pending) or (not out and self.templates_due(now_ns)):
            with_templates = self.templates_due(now_ns)
            sets, n_records, n_data = self._preamble() if with_templates else ([], 0, 0)
            size = self.HEADER_SIZE + sum(map(len, sets))
            n_in = 0
            while g < len(pending):
                template, packed, count = pending[g]
                room = self.policy.max_datagram - size - SET_HEADER.size - self._max_pad()
                k = min(max(room, 0) // template.layout.size, count - at)
                if k == 0:
                    break
                step = template.layout.size
                sets.append(self._set(template.template_id, packed[at * step : (at + k) * step]))
                size += len(sets[-1])
                n_in, at = n_in + k, at + k
                if at == count:
                    g, at = g + 1, 0
            if n_in == 0 and g < len(pending) and not with_templates:
                size = pending[g][0].layout.size
                raise ValueError(f"a {size}-byte record does not fit a datagram")
            n_records, n_data = n_records + n_in, n_data + n_in
            body = b"".join(sets)
            length = self.HEADER_SIZE + len(body)
            head = self.header(records=n_records, length=length, now_ns=now_ns)
            out.append(Datagram(head + body, n_data, with_templates))
            self.packets_sent += 1
            self.records_sent += n_data
            if with_templates:
                self._since_templates, self._templates_at_ns = 1, now_ns
            else:
                self._since_templates = (self._since_templates or 0) + 1
        return out

    def _preamble(self) -> tuple[list[bytes], int, int]:
        """The template sets and the sampling options data: sets, records, data records."""
        template_sets, n_templates = self.template_sets()
        options = self.options_data()
        if options is None:
            return [template_sets], n_templates, 0
        return [template_sets, self._set(options[0], options[1])], n_templates + 1, 1

    def _max_pad(self) -> int:
        return 3 if self.PAD_SETS else 0

    def _set(self, set_id: int, body: bytes) -> bytes:
        pad = (-len(body)) % 4 if self.PAD_SETS else 0
        return SET_HEADER.pack(set_id, SET_HEADER.size + len(body) + pad) + body + b"\0" * pad


def template_record(template_id: int, fields: tuple[tuple[int, int], ...]) -> bytes:
    """A template record, the same in both protocols: id, field count, (id, length) pairs."""
    pairs = b"".join(struct.pack("!HH", *f) for f in fields)
    return struct.pack("!HH", template_id, len(fields)) + pairs
