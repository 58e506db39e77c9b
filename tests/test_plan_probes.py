"""A gateway tunnel's liveness probe: desired state, live reader, executor (fake System), diff.

The gateway backends' golden spec is the model (tests/test_plan_tunnels.py):
beta reaches gw-eu and gw-us over IPv4 in prod; gamma reaches gw-eu over
IPv6 only, in six.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hercc import ir
from hercc.plan.apply import ApplyFailed, Step, apply_steps
from hercc.plan.diff import diff
from hercc.plan.executor.probes import ProbeFailed
from hercc.plan.node_service import read_live
from hercc.resources.action import Action
from hercc.resources.model import KINDS, ORDER, Resource, state_of
from hercc.state.probes import INTERVAL_S, probe_argv, probe_of, probe_pid_file, read_probes
from tests.test_backends_gateway import _model
from tests.test_executor import NODE, rig
from tests.test_node_service import FakeReader
from tests.test_plan_tunnels import tunnels_of

NS = "herc-prod"
EU = f"probe.{NS}/gw-gw-eu"


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return _model()


def probe(model: ir.IR, address: str = EU, node: str = "beta") -> Resource:
    return tunnels_of(model, node)[address]


# ---------------------------------------------------------------- desired state


def test_each_tunnel_pings_its_gateway_in_the_family_it_has(model: ir.IR) -> None:
    eu = probe(model)
    assert dict(eu.attrs) == {"target": "100.127.0.1", "interval": INTERVAL_S}
    assert eu.parent == f"wireguard.{NS}/gw-gw-eu" and eu.label == "gateway gw-eu"
    assert eu.forces_new == {"target", "interval"}
    assert probe(model, f"probe.{NS}/gw-gw-us").attrs["target"] == "100.127.1.1"
    six = probe(model, "probe.herc-six/gw-gw-eu", "gamma")  # no IPv4 address on that tunnel
    assert six.attrs["target"] == "fd68:6572:6375::1"


def test_a_probe_comes_after_the_table_that_lets_its_replies_in() -> None:
    assert ORDER["peer"] < ORDER["nft"] < ORDER["probe"] < ORDER["haproxy"]
    assert KINDS.index("probe") == ORDER["probe"]


def test_a_killed_probe_is_a_create_and_a_new_target_a_replacement(model: ir.IR) -> None:
    eu = probe(model)
    live = Resource("probe", eu.id, dict(eu.attrs), forces_new=eu.forces_new, parent=eu.parent)
    assert diff({EU: eu}, {EU: live}).no_changes
    [created] = diff({EU: eu}, {}).changes
    assert created.action is Action.CREATE
    moved = Resource("probe", eu.id, {**eu.attrs, "target": "100.127.0.9"}, parent=eu.parent)
    [replaced] = diff({EU: eu}, {EU: moved}).changes
    assert replaced.action is Action.REPLACE


# ---------------------------------------------------------------- reading probes


def test_the_arguments_are_the_probe() -> None:
    argv = probe_argv("100.127.0.1", 5)
    assert argv == ["ping", "-n", "-q", "-i", "5", "-W", "1", "100.127.0.1"]
    assert probe_of(argv) == ("100.127.0.1", 5)
    assert probe_of(["ping", "-n", "-q", "-i", "5", "-W", "2", "100.127.0.1"]) is None
    assert probe_of(["sleep", "100"]) is None
    assert probe_of([]) is None


class FakeProcs:
    def __init__(self, running: dict[int, tuple[str, list[str]]]) -> None:
        self.running = running

    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        where, argv = self.running.get(pid, ("", []))
        return argv if where == ns else None


def test_the_reader_keeps_recorded_probes_that_run_in_their_namespace(tmp_path: Path) -> None:
    pids = probe_pid_file(tmp_path, NODE)
    pids.write_text(
        json.dumps(
            {
                f"{NS}/gw-a": 10,  # runs
                f"{NS}/gw-b": 11,  # gone
                f"{NS}/gw-c": 12,  # a PID handed out again: another program
                f"{NS}/gw-d": 13,  # the probe's arguments, in another namespace
                "malformed": 14,
            }
        )
    )
    procs = FakeProcs(
        {
            10: (NS, probe_argv("100.127.0.1", 5)),
            12: (NS, ["sleep", "100"]),
            13: ("elsewhere", probe_argv("100.127.0.1", 5)),
            14: (NS, probe_argv("100.127.0.1", 5)),
        }
    )
    [found] = read_probes(pids, procs)
    assert found.address == f"probe.{NS}/gw-a"
    assert dict(found.attrs) == {"target": "100.127.0.1", "interval": 5}
    assert found.parent == f"wireguard.{NS}/gw-a" and found.forces_new == {"target", "interval"}
    assert read_probes(tmp_path / "none.json", procs) == []


def test_read_live_asks_for_the_nodes_probe_records(tmp_path: Path) -> None:
    reader = FakeReader({})
    read_live(NODE, {}, set(), reader, state_dir=tmp_path)
    assert reader.probes == probe_pid_file(tmp_path, NODE)


# ---------------------------------------------------------------- executor (fake System)


def test_create_starts_ping_in_the_namespace_and_records_it(model: ir.IR, tmp_path: Path) -> None:
    eu = probe(model)
    r = rig(tmp_path)
    r.executor.create(eu)
    argv = ("ip", "netns", "exec", NS, *probe_argv("100.127.0.1", INTERVAL_S))
    assert ("spawn", argv) in r.system.calls
    recorded = json.loads(probe_pid_file(tmp_path / "state", NODE).read_text())
    assert recorded == {eu.id: 4242}


def test_delete_stops_it_by_pid_and_its_restore_starts_it_again(
    model: ir.IR, tmp_path: Path
) -> None:
    eu = probe(model)
    r = rig(tmp_path)
    r.executor.create(eu)
    restore = r.executor.delete(eu)
    assert ("kill", (4242, signal.SIGTERM)) in r.system.calls
    assert json.loads(probe_pid_file(tmp_path / "state", NODE).read_text()) == {}
    restore()
    assert [c for c in r.system.calls if c[0] == "spawn"][-1][1][-1] == "100.127.0.1"


def test_a_recorded_pid_that_runs_something_else_is_not_signalled(
    model: ir.IR, tmp_path: Path
) -> None:
    eu = probe(model)
    r = rig(tmp_path)
    probe_pid_file(tmp_path / "state", NODE).parent.mkdir(parents=True, exist_ok=True)
    probe_pid_file(tmp_path / "state", NODE).write_text(json.dumps({eu.id: 777}))
    r.system.alive.add(777)
    r.system.running[777] = (NS, ["sleep", "100"])
    r.executor.delete(eu)
    assert not [c for c in r.system.calls if c[0] == "kill"]
    assert json.loads(probe_pid_file(tmp_path / "state", NODE).read_text()) == {}


def test_a_ping_that_exits_at_once_fails_the_apply(model: ir.IR, tmp_path: Path) -> None:
    eu = probe(model)
    r = rig(tmp_path)
    r.system.wireguard_go_exits = 2  # every spawned process exits with status 2
    with pytest.raises(ApplyFailed) as failed:
        apply_steps([Step(Action.CREATE, EU, None, eu)], r.executor)
    assert isinstance(failed.value.cause, ProbeFailed)
    assert json.loads(probe_pid_file(tmp_path / "state", NODE).read_text()) == {}


def test_the_reference_plan_keeps_probes_in_order(model: ir.IR) -> None:
    st = state_of(list(tunnels_of(model, "beta").values()))
    kinds = [c.after.kind for c in diff(st, {}).changes if c.after is not None]
    assert kinds.index("probe") > kinds.index("nft") and kinds.count("probe") == 2
