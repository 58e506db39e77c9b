"""The running flow exporter of a node: its pinned maps, polled and exported until told to stop.

`serve` is what `hercc flows export --node N` runs (hercc.cli.flows). It
needs no spec: what to export and where comes from the config file apply
wrote (state/exporter_proc.py `ExporterFiles.config`), the maps from the
node's pins (state/flow_maps.py). It wakes up every poll_interval_ms and
polls when something can be due (hercc.flows.exporter `Exporter.run`): a
flow's timeout, or a map that may be filling up (`NodeMaps.needs_read`:
the flows created since the last read, from the counters map), or an object
added or replaced. A poll:

* `NodeMaps.read` lists the node's objects in the namespaces the node owns
  (its registry in the state directory: another node of the same name, in
  a lab or a test beside it, is not this one), keeps the maps it has open,
  opens new ones (apply may have replaced an object: a new digest is a new
  directory, a pin made again a new inode) and reads what changed in every
  flow map; the keys of an object gone are gone too; the exporter's table
  applies the timeouts and sends (hercc.flows.exporter);
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
from the map with its final counters (`NodeMaps.drain`) and sent (forced
end), and the state file says `clean: true`.

A restart continues: the sequence numbers go on from the state file when
protocol, domain and collectors are the same (a collector then sees no
sequence error), and what is in the map is new since a clean stop. After a
crash (`clean: false`), the map still holds counts that were exported: the
successor takes them as exported (`FlowTable.adopt`), losing what the
crashed one had counted but not sent yet (at most an active timeout's worth
per flow) rather than sending everything again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc.dataplane.attach import BPFFS, MAP_PREFIX
from hercc.diagnostics import OperationError
from hercc.flows.exporter import ExportConfig, Exporter, PollResult
from hercc.flows.records import FlowCounters, FlowKey, MapChanges
from hercc.flows.sender import Sender
from hercc.flows.table import TableStats
from hercc.state.exporter_proc import ExporterFiles, read_config
from hercc.state.flow_maps import FlowMaps, flow_objects
from hercc.state.registry import OwnedRegistry
from hercc.sysio.files import make_dirs, write_atomic

__all__ = ["HIGH_WATER", "LOW_WATER", "NodeMaps", "load_config", "serve"]

HIGH_WATER = 0.9
LOW_WATER = 0.75


class NodeMaps:
    """Every flow map of a node, kept open from read to read (the module docstring);
    a flows.exporter FlowSource and MapAccess."""

    def __init__(self, node: str, state_dir: Path, bpffs: str = BPFFS) -> None:
        self.node = node
        self.bpffs = bpffs
        self._registry = OwnedRegistry(node, state_dir)
        self._maps: dict[Path, FlowMaps] = {}

    def _objects(self) -> dict[Path, int]:
        """The node's objects with a flow map now, and the inode of each one's pin."""
        out = {}
        for directory in flow_objects(self.node, self.bpffs, self._registry.load()):
            try:
                out[directory] = (directory / f"{MAP_PREFIX}flows").stat().st_ino
            except FileNotFoundError:
                continue  # unpinned meanwhile
        return out

    def _sync(self) -> list[FlowKey]:
        """Open the objects added, close those gone or replaced; the keys these held."""
        now, gone = self._objects(), []
        for directory in [d for d, m in self._maps.items() if now.get(d) != m.inode]:
            maps = self._maps.pop(directory)
            gone += list(maps.current())
            maps.close()
        for directory in now.keys() - self._maps.keys():
            self._maps[directory] = FlowMaps(directory)
        self._maps = dict(sorted(self._maps.items()))
        return gone

    def read(self) -> MapChanges:
        gone = self._sync()
        changed: dict[FlowKey, FlowCounters] = {}
        for maps in self._maps.values():
            changes = maps.read()
            changed.update(changes.changed)
            gone += changes.gone
        return MapChanges(changed, gone)

    def needs_read(self) -> bool:
        objects = self._objects()
        if objects != {d: m.inode for d, m in self._maps.items()}:
            return True
        return any(maps.may_overflow(HIGH_WATER) for maps in self._maps.values())

    def snapshot(self) -> dict[FlowKey, FlowCounters]:
        """Every flow of the node's maps now, summed over CPUs (`hercc flows top`)."""
        self.read()
        return self._merged(FlowMaps.current)

    def take(self, keys: Sequence[FlowKey]) -> dict[FlowKey, FlowCounters]:
        return self._merged(lambda maps: maps.take(keys))

    def crowded(self) -> list[FlowKey]:
        out: list[FlowKey] = []
        for maps in self._maps.values():
            size = maps.flows.max_entries
            if maps.live > HIGH_WATER * size:
                out += maps.least_recent(maps.live - int(LOW_WATER * size))
        return out

    def drain(self) -> dict[FlowKey, FlowCounters]:
        self._sync()
        return self._merged(FlowMaps.drain)

    def _merged(
        self, each: Callable[[FlowMaps], dict[FlowKey, FlowCounters]]
    ) -> dict[FlowKey, FlowCounters]:
        """each(maps) of every open object, in one dict (each object's keys are its own)."""
        out: dict[FlowKey, FlowCounters] = {}
        for maps in self._maps.values():
            out.update(each(maps))
        return out

    def close(self) -> None:
        for maps in self._maps.values():
            maps.close()
        self._maps = {}


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
        exporter = Exporter(config, maps, senders, maps=maps)
        if saved is not None and saved.stream == _stream(config):
            exporter.encoder.packets_sent = saved.packets_sent
            exporter.encoder.records_sent = saved.records_sent
        if saved is not None and not saved.clean:
            exporter.table.adopt(maps.read().changed)

        def polled(result: PollResult) -> None:
            _save(files.state, exporter, result.table, senders, clean=False)

        stats = exporter.run(wait=stop.wait, polled=polled, once=once).table
        _save(files.state, exporter, stats, senders, clean=True)
        return stats
    finally:
        maps.close()
        for sender in senders:
            sender.close()
