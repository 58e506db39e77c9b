"""plan/node_service.py through a fake reader: what is read, what is refused, what is kept.

No root, no namespaces: the service takes its LiveSystem, so the tests hand
it a reader that returns a given live state and records what it was asked.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from hercc import ir
from hercc.pipeline import compile_spec
from hercc.plan.node_service import (
    LiveSystem,
    NameConflict,
    NodeContext,
    desired_of,
    naming_for,
    plan_node,
)
from hercc.resources.action import Action
from hercc.resources.model import State
from hercc.resources.naming import Naming
from hercc.resources.sysctl import FORWARD4, FORWARD6
from hercc.state import LiveState, OwnedRegistry
from hercc.state.ipsec import IpsecQuery
from tests.conftest import EXAMPLES

NODE = "gamma"


class Keys:
    """A private key for every node, no preshared keys."""

    def private_key(self, node: str) -> str | None:
        return base64.b64encode(hashlib.sha256(node.encode()).digest()).decode()

    def psk(self, network: str, a: str, b: str) -> str | None:
        return None


@dataclass
class FakeReader:
    state: State = field(default_factory=dict)
    foreign: frozenset[str] = frozenset()
    asked: list[dict[str, Any]] = field(default_factory=list)
    probes: Path | None = None  # the probes' PID file it was asked to read
    ipsec: IpsecQuery | None = None  # the charon it was asked to read
    exporter: Path | None = None  # the state directory of the exporter it was asked to read

    def read(
        self,
        node: str,
        owned: Iterable[str],
        *,
        also: Iterable[str] = (),
        sysctls: Mapping[str, Iterable[str]] | None = None,
        workload_ifname: str = "eth0",
        tables: Iterable[str] = (),
        probes: Path | None = None,
        dataplane: Iterable[str] = (),
        ipsec: IpsecQuery | None = None,
        exporter: Path | None = None,
    ) -> LiveState:
        self.asked.append(
            {
                "node": node,
                "owned": set(owned),
                "also": list(also),
                "sysctls": sysctls,
                "dataplane": list(dataplane),
            }
        )
        self.probes = probes
        self.ipsec = ipsec
        self.exporter = exporter
        return LiveState(self.state, self.foreign)


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return compile_spec(str(EXAMPLES / "reference.herc")).ir


def context(tmp_path: Path, reader: FakeReader, keys: Keys | None = None) -> NodeContext:
    system = LiveSystem(reader, wireguard=None)  # type: ignore[arg-type]  # plans read no device
    return NodeContext.of(NODE, Naming(), keys, tmp_path, system)


def test_a_new_node_is_all_creates_and_reads_what_it_would_touch(
    model: ir.IR, tmp_path: Path
) -> None:
    OwnedRegistry(NODE, tmp_path).add("herc-old")
    reader = FakeReader()
    ctx = context(tmp_path, reader, Keys())
    desired = desired_of(model, ctx)
    planned = plan_node(ctx, desired)
    assert {c.action for c in planned.plan.changes} == {Action.CREATE}
    assert planned.plan.add == len(desired) and planned.live == {}
    (asked,) = reader.asked
    assert asked["node"] == NODE and asked["owned"] == {"herc-old"}
    # desired, not (yet) ours; and the host's own, where enterprise links live
    assert asked["also"] == ["(host)", "herc-prod", "herc-w-web"]
    assert set(asked["sysctls"]) == {"herc-prod", "herc-old"}  # networks, and owned leftovers
    assert {FORWARD4, FORWARD6} <= set(asked["sysctls"]["herc-prod"])


def test_a_name_that_is_not_ours_is_refused(model: ir.IR, tmp_path: Path) -> None:
    ctx = context(tmp_path, FakeReader(foreign=frozenset({"herc-w-web"})), Keys())
    with pytest.raises(NameConflict) as info:
        plan_node(ctx, desired_of(model, ctx))
    assert info.value.problems == [
        "namespace herc-w-web exists and is not Hercules' (not in the registry)"
    ]
    assert str(info.value).startswith("refusing to plan: namespace herc-w-web")


def test_without_keys_the_live_keys_stay(model: ir.IR, tmp_path: Path) -> None:
    with_keys = context(tmp_path, FakeReader(), Keys())
    live = dict(desired_of(model, with_keys))
    wg = live["wireguard.herc-prod/wg-prod"]
    live[wg.address] = replace(wg, attrs={**wg.attrs, "private_key": "sha256:live"})
    keyless = context(tmp_path, FakeReader(state=live))
    planned = plan_node(keyless, desired_of(model, keyless))
    assert planned.plan.no_changes
    assert planned.desired[wg.address].attrs["private_key"] == "sha256:live"


def test_the_netns_prefix_goes_in_front_of_every_namespace() -> None:
    naming = naming_for("t1-")
    assert naming.netns("prod") == "t1-herc-prod"
    assert naming.workload_netns("web") == "t1-herc-w-web"
