"""The `ipsec` kind: desired state, the live reader and the executor over a fake charon, the plan.

tests/lab_ipsec.herc is the model: node beta's link hq-branch to
192.0.2.254 (the live side is tests/test_ipsec_live.py). `FakeVici` is a
charon in memory: it answers list-conns, list-sas and get-shared from what
was loaded, and records every command with its message.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hercc import ir
from hercc.cli.views.plan import render_plan
from hercc.diagnostics import OperationError
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.plan.desired_ipsec import secret_names
from hercc.plan.diff import diff
from hercc.plan.executor.errors import SecretUnavailable
from hercc.plan.executor.ipsec import IpsecExecutor
from hercc.plan.ipsec_setup import IpsecSetup
from hercc.resources.ipsec import IpsecContent, config_digest
from hercc.resources.model import SENSITIVE, Resource, state_of
from hercc.state.ipsec import IpsecQuery, IpsecRecord, ViciError, read_ipsec

SPEC = Path(__file__).parent / "lab_ipsec.herc"
KEY = "not-a-real-psk-" + "x" * 8
ADDRESS = "ipsec.hq-branch"


class FakeVici:
    """A charon in memory (see the module docstring)."""

    def __init__(self, up: bool = True) -> None:
        self.conns: dict[str, dict[str, Any]] = {}
        self.shared: dict[str, str] = {}
        self.sas: set[str] = set()
        self.up = up  # whether an initiate brings the CHILD_SA up
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def request(self, command: str, message: Mapping[str, Any] | None = None) -> dict[str, Any]:
        msg = dict(message or {})
        self.calls.append((command, msg))
        if command == "load-shared":
            self.shared[msg["id"]] = msg["data"]
        elif command == "load-conn":
            self.conns.update(msg)
        elif command == "unload-conn":
            if self.conns.pop(msg["name"], None) is None:
                raise ViciError("unload: connection not found")
        elif command == "unload-shared":
            self.shared.pop(msg["id"], None)
        elif command == "get-shared":
            return {"keys": sorted(self.shared)}
        return {}

    def stream(
        self, command: str, event: str, message: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        msg = dict(message or {})
        self.calls.append((command, msg))
        if command == "list-conns":
            return [{name: _listed(name, tree)} for name, tree in self.conns.items()]
        if command == "list-sas":
            children = {n: {"name": n, "state": "INSTALLED"} for n in self.sas}
            return [{n: {"child-sas": {f"{n}-1": children[n]}}} for n in sorted(self.sas)]
        if command == "initiate":
            if not self.up:
                raise ViciError("establishing CHILD_SA failed")
            self.sas.add(msg["child"])
        if command == "terminate":
            if msg["ike"] not in self.sas:
                raise ViciError("no matching SAs to terminate found")
            self.sas.discard(msg["ike"])
        return []

    def commands(self) -> list[str]:
        return [c for c, _ in self.calls if c not in ("list-conns", "list-sas", "get-shared")]


def _listed(name: str, tree: dict[str, Any]) -> dict[str, Any]:
    """What charon's list-conns reports of a loaded connection (no proposals, no ports)."""
    child = tree["children"][name]
    return {
        "local_addrs": tree["local_addrs"],
        "remote_addrs": tree["remote_addrs"],
        "version": "IKEv2",
        "children": {name: {"local-ts": child["local_ts"], "remote-ts": child["remote_ts"]}},
    }


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return compile_spec(str(SPEC)).ir


def _desired(model: ir.IR) -> Resource:
    return state_of(desired_state(model, "beta"))[ADDRESS]


def _rig(tmp_path: Path, up: bool = True) -> tuple[FakeVici, IpsecRecord, IpsecExecutor]:
    vici, record = FakeVici(up), IpsecRecord(tmp_path / "beta.ipsec.json")
    return vici, record, IpsecExecutor(vici, record, {"hq-branch-psk": KEY})


def _live(vici: FakeVici, record: IpsecRecord) -> tuple[dict[str, Resource], set[str]]:
    resources, foreign = read_ipsec(IpsecQuery(vici, record))
    return state_of(resources), foreign


# ---------------------------------------------------------------- desired state


def test_a_link_is_one_connection_with_its_selectors_and_a_marker_for_its_key(
    model: ir.IR,
) -> None:
    r = _desired(model)
    content = IpsecContent.from_text(r.content or "")
    assert dict(r.attrs) == {
        "local_addrs": ["198.51.100.7"],
        "remote_addrs": ["192.0.2.254"],
        "local_ts": ["10.20.0.0/16"],
        "remote_ts": ["172.16.0.0/12"],
        "config": config_digest(content.tree),
        "psk": "loaded",
        "child": "INSTALLED",
    }
    assert r.sensitive == SENSITIVE["ipsec"] == {"psk", "key"}
    assert content.secret == "hq-branch-psk" and content.remote_id == "192.0.2.254"
    assert content.tree["proposals"] == ["aes256-sha256-modp2048"]
    assert secret_names([r]) == ["hq-branch-psk"]
    assert not [n for n in ("alpha",) if any(x.kind == "ipsec" for x in desired_state(model, n))]


def test_the_plan_shows_the_key_as_sensitive_and_never_its_content(model: ir.IR) -> None:
    r = _desired(model)
    text = render_plan(diff({r.address: r}, {}))
    assert f"+ {ADDRESS}" in text and "psk" in text and "(sensitive)" in text
    assert "loaded" not in text and "hq-branch-psk" not in text


def test_a_missing_secret_is_an_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERC_SECRET_HQ_BRANCH_PSK", raising=False)
    r = Resource(
        "ipsec", "hq-branch", content=IpsecContent("hq-branch", {}, "hq-branch-psk", "x").to_text()
    )
    with pytest.raises(
        OperationError, match=r'missing secret "hq-branch-psk".*HERC_SECRET_HQ_BRANCH_PSK'
    ):
        IpsecSetup().secrets([r])
    monkeypatch.setenv("HERC_SECRET_HQ_BRANCH_PSK", KEY)
    assert IpsecSetup().secrets([r]) == {"hq-branch-psk": KEY}


# ---------------------------------------------------------------- executor and reader


def test_create_loads_key_and_connection_then_initiates_and_reads_back_as_desired(
    model: ir.IR, tmp_path: Path
) -> None:
    vici, record, ex = _rig(tmp_path)
    want = _desired(model)
    ex.create(want)
    assert vici.commands() == ["load-shared", "load-conn", "initiate"]
    shared = vici.calls[0][1]
    assert shared == {"id": "ike-hq-branch", "type": "IKE", "data": KEY, "owners": ["192.0.2.254"]}
    loaded = vici.calls[1][1]["hq-branch"]
    assert "start_action" not in loaded["children"]["hq-branch"]  # the initiate is ours, once
    assert KEY not in record.path.read_text() and record.path.stat().st_mode & 0o777 == 0o600
    live, foreign = _live(vici, record)
    assert foreign == set()
    assert diff({want.address: want}, live).no_changes


def test_what_charon_holds_and_the_record_does_not_is_foreign(tmp_path: Path) -> None:
    vici, record, _ex = _rig(tmp_path)
    vici.conns["theirs"] = {
        "local_addrs": ["%any"],
        "remote_addrs": ["%any"],
        "children": {"theirs": {"local_ts": [], "remote_ts": []}},
    }
    live, foreign = _live(vici, record)
    assert live == {} and foreign == {"theirs"}


def test_a_down_tunnel_or_a_lost_key_shows_and_apply_brings_it_back(
    model: ir.IR, tmp_path: Path
) -> None:
    vici, record, ex = _rig(tmp_path)
    want = _desired(model)
    ex.create(want)
    vici.sas.clear()
    (change,) = diff({want.address: want}, _live(vici, record)[0]).changes
    assert [name for name, *_ in change.changed] == ["child"]
    vici.calls.clear()
    ex.update(change.before, want, [name for name, *_ in change.changed])  # type: ignore[arg-type]
    assert vici.commands() == ["initiate"]
    del vici.shared["ike-hq-branch"]
    (change,) = diff({want.address: want}, _live(vici, record)[0]).changes
    assert [name for name, *_ in change.changed] == ["psk"]


def test_a_changed_proposal_is_reloaded_and_its_undo_loads_the_old_one(
    model: ir.IR, tmp_path: Path
) -> None:
    vici, record, ex = _rig(tmp_path)
    old = _desired(model)
    ex.create(old)
    (hq,) = model.enterprise
    faster = ir.IR(
        **{
            **model.__dict__,
            "enterprise": (
                type(hq)(
                    **{
                        **hq.__dict__,
                        "ipsec": tuple(
                            type(i)(**{**i.__dict__, "proposals": ("aes128-sha256-modp2048",)})
                            for i in hq.ipsec
                        ),
                    }
                ),
            ),
        }
    )
    new = _desired(faster)
    live = _live(vici, record)[0][ADDRESS]
    (change,) = diff({new.address: new}, {live.address: live}).changes
    assert [name for name, *_ in change.changed] == ["config"]
    vici.calls.clear()
    ex.update(live, new, ["config"])
    assert vici.commands() == ["load-shared", "load-conn", "terminate", "initiate"]
    assert vici.conns["hq-branch"]["proposals"] == ["aes128-sha256-modp2048"]
    ex.update(new, _live(vici, record)[0][ADDRESS], ["config"])  # the undo: live, no content
    assert vici.conns["hq-branch"]["proposals"] == ["aes256-sha256-modp2048"]


def test_delete_terminates_unloads_and_forgets_and_its_restore_loads_again(
    model: ir.IR, tmp_path: Path
) -> None:
    vici, record, ex = _rig(tmp_path)
    ex.create(_desired(model))
    live = _live(vici, record)[0][ADDRESS]
    vici.calls.clear()
    restore = ex.delete(live)
    assert vici.commands() == ["terminate", "unload-conn", "unload-shared"]
    assert vici.conns == {} and vici.shared == {} and vici.sas == set() and record.load() == {}
    restore()
    assert set(vici.conns) == {"hq-branch"} and vici.sas == {"hq-branch"}
    assert set(record.load()) == {"hq-branch"}


def test_a_tunnel_that_does_not_come_up_fails_and_an_unresolved_key_is_refused(
    model: ir.IR, tmp_path: Path
) -> None:
    _vici, _record, ex = _rig(tmp_path, up=False)
    with pytest.raises(OperationError, match=r"ipsec\.hq-branch: the tunnel did not come up"):
        ex.create(_desired(model))
    vici = FakeVici()
    bare = IpsecExecutor(vici, IpsecRecord(tmp_path / "other.json"), {})
    with pytest.raises(SecretUnavailable, match="secret 'hq-branch-psk' was not resolved"):
        bare.create(_desired(model))
    assert vici.calls == []


# ---------------------------------------------------------------- node service


def test_the_node_service_asks_for_charon_only_where_there_are_links_and_secrets_first(
    model: ir.IR, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hercc.plan.node_service import LiveSystem, NodeContext, desired_of, plan_node
    from hercc.resources.naming import Naming
    from tests.test_node_service import FakeReader

    reader, vici = FakeReader(), FakeVici()
    system = LiveSystem(reader, None, vici=lambda _socket: vici)  # type: ignore[arg-type]
    ctx = NodeContext.of("beta", Naming(), None, tmp_path, system)
    monkeypatch.delenv("HERC_SECRET_HQ_BRANCH_PSK", raising=False)
    with pytest.raises(OperationError, match="missing secret"):
        plan_node(ctx, desired_of(model, ctx))
    assert reader.asked == []  # refused before anything was read
    monkeypatch.setenv("HERC_SECRET_HQ_BRANCH_PSK", KEY)
    planned = plan_node(ctx, desired_of(model, ctx))
    assert reader.ipsec is not None and reader.ipsec.vici is vici
    assert [c.address for c in planned.plan.changes if c.resource.kind == "ipsec"] == [ADDRESS]
    alpha = NodeContext.of("alpha", Naming(), None, tmp_path, system)
    plan_node(alpha, desired_of(model, alpha))
    assert reader.ipsec is None  # no link, nothing recorded: charon is not asked
