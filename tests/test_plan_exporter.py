"""The `exporter` kind: desired from `monitor netflow` on a node with programs, read back from
its PID, command line and config, started and stopped by the executor through a fake System,
and the views of `flows top` and `dataplane status`."""

from __future__ import annotations

import ipaddress
import json
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from hercc import ir
from hercc.cli.views.dataplane import render_status, status_data
from hercc.cli.views.flows import render_top
from hercc.flows.exporter import ExportConfig, domain_id
from hercc.flows.records import Direction, FlowCounters, FlowKey
from hercc.flows.top import top_talkers
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.plan.desired_exporter import exporter_resources
from hercc.plan.executor.flow_exporter import ExporterFailed, FlowExporters
from hercc.plan.executor.system import System
from hercc.plan.node_service import read_live
from hercc.resources.gateway_naming import HOST_NETNS
from hercc.resources.model import ORDER, Resource
from hercc.state.dataplane_status import MapStatus, ObjectStatus, ProgramStatus
from hercc.state.exporter_proc import ExporterFiles, exporter_argv, exporter_of, read_exporter
from hercc.sysio import procfs
from tests.conftest import EXAMPLES
from tests.test_executor import FakeProcess
from tests.test_node_service import FakeReader

ATTRS = {
    "protocol": "v9",
    "collectors": ["192.0.2.99:2055"],
    "active_timeout_ms": 60_000,
    "idle_timeout_ms": 15_000,
    "sampling": 1,
}


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return compile_spec(str(EXAMPLES / "reference.herc")).ir


def test_a_node_with_programs_and_netflow_gets_one_exporter(model: ir.IR) -> None:
    exporters = [r for r in desired_state(model, "gamma") if r.kind == "exporter"]
    assert [r.address for r in exporters] == ["exporter.gamma"]
    assert ORDER["bpf"] < ORDER["exporter"]  # after the programs whose maps it reads
    node = model.node("gamma")
    assert list(exporter_resources(model, node, [])) == []  # no programs, no exporter
    without = ir.IR(**{**model.__dict__, "netflow": None})
    programs = [r for r in desired_state(model, "gamma") if r.kind == "bpf"]
    assert list(exporter_resources(without, node, programs)) == []


def test_the_config_round_trips_through_its_attributes() -> None:
    config = ExportConfig.from_attrs(ATTRS, node="a")
    assert config.attrs() == ATTRS and config.domain_id == domain_id("a")
    for broken in ({**ATTRS, "protocol": "v5"}, {**ATTRS, "collectors": []}, {"protocol": "v9"}):
        with pytest.raises(ValueError):
            ExportConfig.from_attrs(broken, node="a")


def test_the_command_line_is_the_exporter(tmp_path: Path) -> None:
    argv = exporter_argv("a", tmp_path, "ul")
    assert argv[1:] == [
        "-m", "hercc", "flows", "export", "--node", "a", "--state-dir", str(tmp_path),
        "--netns", "ul",
    ]  # fmt: skip
    assert exporter_of(argv) == ("a", str(tmp_path), "ul")
    assert exporter_of(["/other/python", *argv[1:]]) == ("a", str(tmp_path), "ul")
    assert exporter_of(exporter_argv("a", tmp_path, None)) == ("a", str(tmp_path), None)
    assert exporter_of(["python", "-m", "hercc", "flows", "top", "--node", "a"]) is None
    assert exporter_of(["ping", "-n", "x"]) is None
    assert exporter_of([*argv, "--once"]) is None


def test_the_reader_keeps_only_a_recorded_exporter_that_runs(tmp_path: Path) -> None:
    files = ExporterFiles(tmp_path, "a")
    running = {7: exporter_argv("a", tmp_path, None), 8: ["sleep", "100"]}
    assert read_exporter("a", tmp_path, running.get) == []  # nothing recorded
    procfs.write_pid_file(files.pid, {"a": 7})
    files.config.write_text(json.dumps(ATTRS))
    (found,) = read_exporter("a", tmp_path, running.get)
    assert (found.address, dict(found.attrs)) == ("exporter.a", ATTRS)
    assert found.forces_new == set(ATTRS)
    procfs.write_pid_file(files.pid, {"a": 8})  # the PID went to another program
    assert read_exporter("a", tmp_path, running.get) == []
    procfs.write_pid_file(files.pid, {"a": 7})
    assert read_exporter("b", tmp_path, running.get) == []  # another node's
    other = {7: exporter_argv("a", tmp_path / "elsewhere", None)}
    assert read_exporter("a", tmp_path, other.get) == []  # another state directory's


def test_read_live_asks_for_the_nodes_exporter_records(tmp_path: Path) -> None:
    reader = FakeReader({})
    read_live("a", {}, set(), reader, state_dir=tmp_path)
    assert reader.exporter == tmp_path
    read_live("a", {}, set(), reader, state_dir=None)
    assert reader.exporter is None


@dataclass
class Fake:
    """spawn, kill and argv_in of the System; a spawned exporter writes its state file."""

    state_dir: Path
    exits: int | None = None
    ignores_term: bool = False
    running: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    next_pid: int = 100

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> FakeProcess:
        self.next_pid += 1
        self.calls.append(("spawn", list(argv)))
        ns = argv[argv.index("--netns") + 1] if "--netns" in argv else HOST_NETNS
        if self.exits is not None:
            log.write_text("hercc: error: no flow export config\n")
            return FakeProcess(self.next_pid, self.exits)
        self.running[self.next_pid] = (ns, list(argv))
        state = ExporterFiles(self.state_dir, "a").state
        state.write_text(json.dumps({"pid": self.next_pid}))
        return FakeProcess(self.next_pid)

    def kill(self, pid: int, sig: int) -> None:
        self.calls.append(("kill", (pid, sig)))
        if sig == signal.SIGKILL or not self.ignores_term:
            self.running.pop(pid, None)

    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        where, argv = self.running.get(pid, ("", []))
        return argv if where == ns else None


def executor(fake: Fake, underlay: str | None = "ul") -> FlowExporters:
    return FlowExporters(cast(System, fake), "a", fake.state_dir, underlay)


RESOURCE = Resource("exporter", "a", ATTRS)


def test_create_writes_the_config_starts_it_and_records_it(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    executor(fake).create(RESOURCE)
    files = ExporterFiles(tmp_path, "a")
    assert json.loads(files.config.read_text()) == ATTRS
    (spawned,) = [argv for what, argv in fake.calls if what == "spawn"]
    assert spawned == exporter_argv("a", tmp_path, "ul")
    assert procfs.read_pid_file(files.pid) == {"a": 101}


def test_an_exporter_that_exits_at_once_is_an_error(tmp_path: Path) -> None:
    fake = Fake(tmp_path, exits=1)
    with pytest.raises(ExporterFailed, match="exited with status 1: hercc: error: no flow"):
        executor(fake).create(RESOURCE)
    assert procfs.read_pid_file(ExporterFiles(tmp_path, "a").pid) == {}


def test_delete_stops_its_own_process_only_and_restore_starts_it(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    executor(fake).create(RESOURCE)
    restore = executor(fake).delete(RESOURCE)  # a later run: by the PID file
    assert ("kill", (101, signal.SIGTERM)) in fake.calls and fake.running == {}
    assert not ExporterFiles(tmp_path, "a").config.exists()
    restore()
    assert list(fake.running) == [102]
    # a recorded PID that now runs something else is never signalled
    fake.running[102] = ("ul", ["sleep", "100"])
    fake.calls.clear()
    executor(fake).delete(RESOURCE)
    assert [c for c in fake.calls if c[0] == "kill"] == []


def test_an_exporter_that_ignores_sigterm_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hercc.plan.executor.flow_exporter.STOP_TIMEOUT", 0.1)
    fake = Fake(tmp_path, ignores_term=True)
    executor(fake, None).create(RESOURCE)
    executor(fake, None).delete(RESOURCE)
    kills = [args for what, args in fake.calls if what == "kill"]
    assert kills == [(101, signal.SIGTERM), (101, signal.SIGKILL)]


def flow(n: int, proto: int = 17) -> FlowKey:
    src = ipaddress.ip_address(f"10.0.0.{n}")
    return FlowKey(src, ipaddress.ip_address("10.0.1.1"), 1000 + n, 53, proto, 3, Direction.INGRESS)


def test_top_ranks_by_rate_once_it_has_one() -> None:
    before = {
        flow(1): FlowCounters(10, 10_000, 1, 1, 0),
        flow(2): FlowCounters(100, 5_000, 1, 1, 0),
    }
    now = {flow(1): FlowCounters(11, 10_100, 1, 2, 0), flow(2): FlowCounters(200, 10_000, 1, 2, 0)}
    first = top_talkers(before, None, 0)
    assert [t.key for t in first] == [flow(1), flow(2)] and first[0].bps is None
    by_bytes = top_talkers(now, before, 2.0)
    assert [t.key for t in by_bytes] == [flow(2), flow(1)]
    assert (by_bytes[0].pps, by_bytes[0].bps) == (50.0, 20_000.0)
    assert [t.key for t in top_talkers(now, before, 2.0, sort="packets", limit=1)] == [flow(2)]
    deleted = {flow(2): FlowCounters(3, 90, 5, 5, 0)}  # the exporter deleted it: a new entry
    assert top_talkers(deleted, now, 1.0)[0].pps == 3.0
    text = render_top("a", by_bytes, 2, "12:00:00")
    lines = text.splitlines()
    assert lines[0] == "hercc flows top: node a, 2 flows in the maps, 12:00:00"
    assert lines[2].split() == [
        "SOURCE",
        "DESTINATION",
        "PROTO",
        "IF",
        "PACKETS",
        "BYTES",
        "PKT/S",
        "BIT/S",
    ]
    assert lines[3].split() == [
        "10.0.0.2:1002",
        "10.0.1.1:53",
        "udp",
        "3",
        "200",
        "10000",
        "50",
        "20.0k",
    ]


def test_status_text_and_json() -> None:
    obj = ObjectStatus(
        "ns1",
        "tc-ingress",
        "0123456789abcdef",
        (
            ProgramStatus("fastpath_tc_eth", 42, ("hv-a", "hv-b")),
            ProgramStatus("fastpath_tc_l3", 43, ()),
        ),
        (MapStatus("counters", 6, 6), MapStatus("flows", 65536, 12)),
        {"redirected": 5, "passed": 2, "dropped": 0, "evicted": 1, "flows_created": 13},
    )
    assert render_status("a", [obj]) == (
        "ns1 tc-ingress 0123456789abcdef\n"
        "  program fastpath_tc_eth (id 42): hv-a, hv-b\n"
        "  program fastpath_tc_l3 (id 43): not attached\n"
        "  map counters: 6 of 6 entries\n"
        "  map flows: 12 of 65536 entries\n"
        "  counters: redirected=5 passed=2 dropped=0 evicted=1\n"
    )
    data = status_data("a", [obj])
    assert data["objects"][0]["programs"][0] == {
        "entry": "fastpath_tc_eth",
        "id": 42,
        "devices": ["hv-a", "hv-b"],
    }
    assert render_status("a", []) == "node a: no dataplane programs pinned\n"
