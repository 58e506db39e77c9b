"""The running flow exporter of a node: its pinned maps, polled and exported until told to stop.

`serve` is what `hercc flows export --node N` runs (hercc.cli.flows). It
needs no spec: what to export and where comes from the config file apply
wrote (state/exporter_proc.py `ExporterFiles.config`), the maps from the
node's pins (state/flow_maps.py). Every poll_interval_ms:

* `NodeMaps.entries` opens the node's objects afresh (apply may have
  replaced one since: a new digest is a new directory) in the namespaces
  the node owns (its registry in the state directory: another node of the
  same name, in a lab or a test beside it, is not this one) and reads every
  flow map; the exporter's table applies the timeouts and sends
  (hercc.flows.exporter);
* flows exported and idle are deleted from their map (`NodeMaps.take`), so
  the LRU only evicts when the live flows outgrow it; a map fuller than
  HIGH_WATER of its entries is brought down to LOW_WATER by exporting and
  deleting its least recently seen flows (`crowded`, flowEndReason 5:
  lack of resources);
* the state file records the PID, the sequence numbers so far and
  `clean: false`.

A collector that cannot be reached (no route yet, a local port closed)
costs its datagrams, not the exporter: a send that fails is counted per
collector (`send_errors` in the state file, with the last error) and the
next datagram is tried again, as any UDP exporter does; the sequence
numbers go on, so the collector sees the loss.

On stop (SIGTERM, or after one poll with `--once`), every flow is deleted
from the map with its final counters and sent (forced end), and the state
file says `clean: true`.

A restart continues: the sequence numbers go on from the state file when
protocol, domain and collectors are the same (a collector then sees no
sequence error), and what is in the map is new since a clean stop. After a
crash (`clean: false`), the map still holds counts that were exported: the
successor takes them as exported (`FlowTable.adopt`), losing what the
crashed one had counted but not sent yet (at most an active timeout's worth
per flow) rather than sending everything again.
"""

from __future__ import annotations

import heapq
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.dataplane.attach import BPFFS
from hercc.diagnostics import OperationError
from hercc.flows.exporter import ExportConfig, Exporter
from hercc.flows.records import FlowKey, merge
from hercc.flows.sender import Sender
from hercc.flows.table import TableStats
from hercc.state.dataplane import FlowEntry
from hercc.state.exporter_proc import ExporterFiles, read_config
from hercc.state.flow_maps import FlowMaps, node_flow_maps
from hercc.state.registry import OwnedRegistry
from hercc.sysio.files import make_dirs, write_atomic

__all__ = ["HIGH_WATER", "LOW_WATER", "NodeMaps", "load_config", "serve"]

HIGH_WATER = 0.9
LOW_WATER = 0.75


class NodeMaps:
    """Every flow map of a node (the module docstring); implements flows.exporter.MapAccess."""

    def __init__(self, node: str, state_dir: Path, bpffs: str = BPFFS) -> None:
        self.node = node
        self.bpffs = bpffs
        self._registry = OwnedRegistry(node, state_dir)
        self._known: dict[Path, dict[bytes, FlowKey]] = {}  # per object: its keys decoded
        self._maps: list[FlowMaps] = []
        self._where: dict[FlowKey, FlowMaps] = {}
        self._crowded: list[FlowKey] = []

    def entries(self) -> list[FlowEntry]:
        self.close()
        self._maps = node_flow_maps(self.node, self.bpffs, self._registry.load())
        self._where, self._crowded = {}, []
        out: list[FlowEntry] = []
        self._known = {m.directory: self._known.get(m.directory, {}) for m in self._maps}
        for maps in self._maps:
            entries = maps.entries(self._known[maps.directory])
            for key, _ in entries:
                self._where[key] = maps
            self._crowded += _least_recent(entries, maps.flows.max_entries)
            out += entries
        return out

    def take(self, keys: Sequence[FlowKey]) -> list[FlowEntry]:
        by_map: dict[int, list[FlowKey]] = {}
        for key in keys:
            maps = self._where.pop(key, None)
            if maps is not None:
                by_map.setdefault(id(maps), []).append(key)
        out: list[FlowEntry] = []
        for maps in self._maps:
            out += maps.take(by_map.get(id(maps), []))
        return out

    def crowded(self) -> list[FlowKey]:
        return self._crowded

    def close(self) -> None:
        for maps in self._maps:
            maps.close()
        self._maps = []


def _least_recent(entries: Sequence[FlowEntry], max_entries: int) -> list[FlowKey]:
    """The flows to drop from a map fuller than HIGH_WATER to bring it to LOW_WATER."""
    if len(entries) <= HIGH_WATER * max_entries:
        return []
    n = len(entries) - int(LOW_WATER * max_entries)
    last = ((max(c.last_ns for c in cpus), key) for key, cpus in entries)
    return [key for _, key in heapq.nsmallest(n, last)]


class _Tolerant:
    """A sender whose failures are counted, not raised (the module docstring)."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self.errors = 0
        self.last_error = ""

    def send(self, payload: bytes) -> None:
        try:
            self._sender.send(payload)
        except OperationError as exc:
            self.errors += 1
            self.last_error = str(exc)

    def close(self) -> None:
        self._sender.close()


def load_config(files: ExporterFiles) -> ExportConfig:
    """The config apply wrote for the node; OperationError when there is none."""
    attrs = read_config(files.config)
    if attrs is None:
        raise OperationError(
            f"no flow export config for node {files.node} in {files.config} "
            "(hercc apply writes it for a spec with monitor netflow)"
        )
    try:
        return ExportConfig.from_attrs(attrs, node=files.node)
    except ValueError as exc:
        raise OperationError(f"{files.config}: {exc}") from None


@dataclass(frozen=True)
class _Saved:
    """The state file (the module docstring)."""

    stream: list[Any]  # protocol, domain id, collectors: whose sequence numbers these are
    packets_sent: int
    records_sent: int
    clean: bool


def _read_saved(path: Path) -> _Saved | None:
    data = read_config(path)
    try:
        return None if data is None else _Saved(
            list(data["stream"]), int(data["packets_sent"]), int(data["records_sent"]),
            bool(data["clean"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None


def _stream(config: ExportConfig) -> list[Any]:
    return [config.protocol, config.domain_id, list(config.collectors)]


def _save(
    path: Path,
    exporter: Exporter,
    stats: TableStats,
    senders: Sequence[_Tolerant],
    *,
    clean: bool,
) -> None:
    encoder = exporter.encoder
    data = {
        "pid": os.getpid(),
        "stream": _stream(exporter.config),
        "packets_sent": encoder.packets_sent,
        "records_sent": encoder.records_sent,
        "clean": clean,
        "table": {
            "flows": stats.flows,
            "open_records": stats.open_records,
            "records": stats.records,
            "evicted": stats.evicted,
        },
        "send_errors": {
            collector: {"count": s.errors, "last": s.last_error}
            for collector, s in zip(exporter.config.collectors, senders, strict=True)
            if s.errors
        },
    }
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _enter_netns(netns: str) -> None:
    from pyroute2.netns import setns  # type: ignore[import-untyped]

    try:
        setns(netns, flags=0)
    except OSError as exc:
        raise OperationError(f"cannot enter network namespace {netns}: {exc.strerror}") from None


def serve(
    node: str,
    state_dir: Path,
    stop: threading.Event,
    *,
    netns: str | None = None,
    once: bool = False,
    bpffs: str = BPFFS,
    open_senders: Callable[[ExportConfig], Iterable[Sender]] = ExportConfig.open_senders,
) -> TableStats:
    """Export node's flows until `stop` is set (after one poll with `once`); the final stats."""
    files = ExporterFiles(state_dir, node)
    config = load_config(files)
    if netns is not None:
        _enter_netns(netns)
    make_dirs(state_dir, 0o700)
    saved = _read_saved(files.state)
    senders = [_Tolerant(sender) for sender in open_senders(config)]
    maps = NodeMaps(node, state_dir, bpffs)
    try:
        exporter = Exporter(config, maps.entries, senders, maps=maps)
        if saved is not None and saved.stream == _stream(config):
            exporter.encoder.packets_sent = saved.packets_sent
            exporter.encoder.records_sent = saved.records_sent
        if saved is not None and not saved.clean:
            exporter.table.adopt(merge(maps.entries()))
        while True:
            stats = exporter.poll().table
            _save(files.state, exporter, stats, senders, clean=False)
            if once or stop.wait(config.poll_interval_ms / 1000):
                break
        stats = exporter.stop().table
        _save(files.state, exporter, stats, senders, clean=True)
        return stats
    finally:
        maps.close()
        for sender in senders:
            sender.close()
