"""The apply engine with a fake executor: order, rollback, confirm window."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hercc.plan.apply import ApplyFailed, Step, UndoLog, apply_steps, confirm_window
from hercc.resources.action import Action
from hercc.resources.model import Resource


class FakeSystem:
    """A node as a dict of resources; can be told to fail on one address."""

    def __init__(self, state: dict[str, Resource], fail_on: str | None = None) -> None:
        self.state = dict(state)
        self.fail_on = fail_on
        self.calls: list[str] = []

    def _maybe_fail(self, address: str) -> None:
        if address == self.fail_on:
            raise RuntimeError("injected failure")

    def create(self, resource: Resource) -> None:
        self._maybe_fail(resource.address)
        assert resource.address not in self.state
        self.calls.append(f"create {resource.address}")
        self.state[resource.address] = resource

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        self._maybe_fail(after.address)
        assert self.state[before.address] == before
        self.calls.append(f"update {after.address}")
        self.state[after.address] = after

    def delete(self, resource: Resource):  # type: ignore[no-untyped-def]
        self._maybe_fail(resource.address)
        old = self.state.pop(resource.address)
        self.calls.append(f"delete {resource.address}")

        def restore() -> None:
            self.state[old.address] = old

        return restore


NS = Resource("netns", "herc-prod")
WG = Resource("wireguard", "herc-prod/wg-prod", {"listen_port": 51820}, parent=NS.address)
WG2 = Resource("wireguard", "herc-prod/wg-prod", {"listen_port": 51821}, parent=NS.address)
ADDR = Resource("address", "herc-prod/wg-prod/10.20.0.1/16", parent=WG.address)
OLD = Resource(
    "peer", "herc-prod/wg-prod/OLDKEY", {"endpoint": "192.0.2.1:51820"}, parent=WG.address
)


def steps() -> list[Step]:
    return [
        Step(Action.DELETE, OLD.address, OLD, None),
        Step(Action.CREATE, ADDR.address, None, ADDR),
        Step(Action.UPDATE, WG.address, WG, WG2, ("listen_port",)),
    ]


def test_apply_runs_every_step_in_order() -> None:
    system = FakeSystem({r.address: r for r in (NS, WG, OLD)})
    apply_steps(steps(), system)
    assert system.calls == [
        f"delete {OLD.address}",
        f"create {ADDR.address}",
        f"update {WG.address}",
    ]
    assert system.state == {NS.address: NS, WG.address: WG2, ADDR.address: ADDR}


@pytest.mark.parametrize("fail_at", [ADDR.address, WG.address])
def test_failure_halfway_restores_the_node(fail_at: str) -> None:
    before = {r.address: r for r in (NS, WG, OLD)}
    system = FakeSystem(before, fail_on=fail_at)
    with pytest.raises(ApplyFailed) as info:
        apply_steps(steps(), system)
    assert system.state == before
    assert info.value.step.address == fail_at
    assert "back as it was" in str(info.value)


def test_replace_is_delete_then_create_and_undoes() -> None:
    new = Resource(
        "veth", "herc-prod/hv-web", {"peer_netns": "b"}, forces_new=frozenset({"peer_netns"})
    )
    old = Resource(
        "veth", "herc-prod/hv-web", {"peer_netns": "a"}, forces_new=frozenset({"peer_netns"})
    )
    system = FakeSystem({old.address: old, ADDR.address: ADDR})
    log = apply_steps([Step(Action.REPLACE, old.address, old, new, ("peer_netns",))], system)
    assert system.state[new.address] == new
    assert log.replay() == []
    assert system.state[old.address] == old


def test_confirm_window_keeps_a_confirmed_change() -> None:
    system = FakeSystem({r.address: r for r in (NS, WG, OLD)})
    log = apply_steps(steps(), system)
    now = [0.0]
    answer = confirm_window(
        log,
        10,
        confirmed=lambda: now[0] >= 3,
        healthy=lambda: True,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert answer == "confirmed"
    assert system.state[WG.address] == WG2


@pytest.mark.parametrize(
    ("healthy", "expected"), [(True, "reverted-timeout"), (False, "reverted-unhealthy")]
)
def test_confirm_window_reverts_without_confirmation(healthy: bool, expected: str) -> None:
    before = {r.address: r for r in (NS, WG, OLD)}
    system = FakeSystem(before)
    log = apply_steps(steps(), system)
    now = [0.0]
    answer = confirm_window(
        log,
        5,
        confirmed=lambda: False,
        healthy=lambda: healthy,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert answer == expected
    assert system.state == before


def test_ctrl_c_during_the_window_reverts() -> None:
    before = {r.address: r for r in (NS, WG, OLD)}
    system = FakeSystem(before)
    log = apply_steps(steps(), system)

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    answer = confirm_window(
        log, 5, lambda: False, lambda: True, clock=lambda: 0.0, sleep=interrupted
    )
    assert answer == "reverted-interrupt"
    assert system.state == before


def test_undo_log_reports_every_error_and_keeps_going() -> None:
    log = UndoLog()
    done: list[str] = []
    log.push("a", lambda: done.append("a"))

    def boom() -> None:
        raise RuntimeError("nope")

    log.push("b", boom)
    log.push("c", lambda: done.append("c"))
    assert log.replay() == ["undo b: nope"]
    assert done == ["c", "a"]
