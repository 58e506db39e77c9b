"""Issue 8, plan side, without root: PSKs in plans and diffs, host name endpoints, saved
plans recognised by content, and the node lock.

Run through the CLI (`python -m hercc`) where a user would see the defect; the
pieces below it (desired state, renderer, saved plans, the lock) directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hercc.cli.views.plan import plan_to_json, render_plan
from hercc.diagnostics import OperationError
from hercc.keys import init_keys, psk_path
from hercc.pipeline import compile_spec
from hercc.plan.desired import PSK_UNKNOWN, DirKeys, desired_state
from hercc.plan.diff import Change, Plan, diff
from hercc.plan.node_service import LiveSystem, NodeContext, desired_of, make_psks, plan_node
from hercc.plan.saved import (
    FORMAT_VERSION,
    PlanMismatch,
    check_made_like,
    plan_to_data,
    save_plan,
    sniff_plan,
)
from hercc.resources.action import Action
from hercc.resources.fingerprints import fingerprint
from hercc.resources.model import Resource, state_of
from hercc.resources.naming import Naming
from hercc.sysio.lock import LockTimeout, locked
from tests.cliproc import hercc
from tests.test_node_service import FakeReader


def spec(psk: bool = False, endpoint_b: str = "10.255.7.2:51820") -> str:
    return (
        "network t {\n  range 10.77.0.0/16\n" + ("  psk on\n" if psk else "") + "}\n\n"
        "node a {\n  network t\n  endpoint 10.255.7.1\n}\n\n"
        f"node b {{\n  network t\n  endpoint {endpoint_b}\n}}\n"
    )


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- 2, 3: PSKs


def test_diff_without_keys_shows_psk_on(tmp_path: Path) -> None:
    old = write(tmp_path, "old.herc", spec())
    new = write(tmp_path, "new.herc", spec(psk=True))
    done = hercc("diff", str(old), str(new), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "      ~ preshared_key = (sensitive, added)\n" in done.stdout
    back = hercc("diff", str(new), str(old), cwd=tmp_path)
    assert back.returncode == 2 and "~ preshared_key = (sensitive, removed)\n" in back.stdout
    same = hercc("diff", str(new), str(new), cwd=tmp_path)
    assert same.returncode == 0, same.stdout


def test_diff_with_keys_shows_a_psk_to_be_created(tmp_path: Path) -> None:
    old = write(tmp_path, "old.herc", spec())
    new = write(tmp_path, "new.herc", spec(psk=True))
    keys = tmp_path / "keys"
    assert hercc("keys", "init", str(new), "--keys", str(keys), cwd=tmp_path).returncode == 0
    done = hercc("diff", str(old), str(new), "--keys", str(keys), cwd=tmp_path)
    assert done.returncode == 2 and "~ preshared_key = (sensitive, added)\n" in done.stdout
    assert not (keys / "psk").exists()  # a diff never creates a key


def test_desired_state_says_a_psk_is_wanted(tmp_path: Path) -> None:
    model = compile_spec(str(write(tmp_path, "s.herc", spec(psk=True))), use_lock=False).ir
    peers = [r for r in desired_state(model, "a") if r.kind == "peer"]
    assert [p.attrs["preshared_key"] for p in peers] == [PSK_UNKNOWN]
    keys = tmp_path / "keys"
    init_keys(model, str(keys))
    with_keys = [r for r in desired_state(model, "a", keys=DirKeys(str(keys))) if r.kind == "peer"]
    assert [p.attrs["preshared_key"] for p in with_keys] == [PSK_UNKNOWN]  # not created yet
    off = compile_spec(str(write(tmp_path, "o.herc", spec())), use_lock=False).ir
    assert [r.attrs["preshared_key"] for r in desired_state(off, "a") if r.kind == "peer"] == [None]


def _peer(psk: str | None) -> Resource:
    return Resource(
        "peer",
        "ns/wg0/KEY",
        {"allowed_ips": ["10.0.0.0/24"], "preshared_key": psk},
        sensitive=frozenset({"preshared_key"}),
    )


def test_sensitive_changes_say_added_removed_or_changed() -> None:
    def text(old: str | None, new: str | None) -> str:
        return render_plan(diff(state_of([_peer(new)]), state_of([_peer(old)])))

    assert "      ~ preshared_key = (sensitive, added)\n" in text(None, "sha256:1")
    assert "      ~ preshared_key = (sensitive, removed)\n" in text("sha256:1", None)
    assert "      ~ preshared_key = (sensitive)\n" in text("sha256:1", "sha256:2")
    created = render_plan(diff(state_of([_peer(PSK_UNKNOWN)]), {}))
    assert "      + preshared_key = (sensitive)\n" in created


def _psk_context(tmp_path: Path, live: dict[str, Resource], with_keys: bool) -> NodeContext:
    system = LiveSystem(FakeReader(state=live), wireguard=None)  # type: ignore[arg-type]
    keys = DirKeys(str(tmp_path / "keys")) if with_keys else None
    return NodeContext.of("a", Naming(), keys, tmp_path / "state", system, psks=keys)


def _peer_of(state: dict[str, Resource]) -> Resource:
    (peer,) = [r for r in state.values() if r.kind == "peer"]
    return peer


def _live(model_state: dict[str, Resource], psk: str | None) -> dict[str, Resource]:
    live = dict(model_state)
    peer = _peer_of(live)
    live[peer.address] = replace(peer, attrs={**peer.attrs, "preshared_key": psk}, label=None)
    return live


def test_plan_without_keys_shows_a_missing_psk_and_keeps_a_set_one(tmp_path: Path) -> None:
    model = compile_spec(str(write(tmp_path, "s.herc", spec(psk=True))), use_lock=False).ir
    base = _psk_context(tmp_path, {}, with_keys=False)
    want = desired_of(model, base)
    missing = plan_node(_psk_context(tmp_path, _live(want, None), False), want).plan
    assert [c.changed for c in missing.changes] == [(("preshared_key", None, PSK_UNKNOWN),)]
    kept = plan_node(_psk_context(tmp_path, _live(want, "sha256:live"), False), want)
    assert kept.plan.no_changes  # without keys a set PSK cannot be checked: left alone
    off = compile_spec(str(write(tmp_path, "o.herc", spec())), use_lock=False).ir
    gone = plan_node(
        _psk_context(tmp_path, _live(want, "sha256:live"), False), desired_of(off, base)
    )
    assert [c.changed for c in gone.plan.changes] == [(("preshared_key", "sha256:live", None),)]
    with pytest.raises(OperationError, match=r"peer b needs a preshared key \(psk on\)"):
        make_psks(base, missing)


def test_apply_makes_the_missing_psk_of_the_pair(tmp_path: Path) -> None:
    model = compile_spec(str(write(tmp_path, "s.herc", spec(psk=True))), use_lock=False).ir
    init_keys(model, str(tmp_path / "keys"))
    ctx = _psk_context(tmp_path, {}, with_keys=True)
    planned = plan_node(ctx, desired_of(model, ctx))
    assert planned.plan.add == len(planned.desired)
    made = make_psks(ctx, planned.plan)
    path = psk_path(str(tmp_path / "keys"), "t", "a", "b")
    assert os.stat(path).st_mode & 0o777 == 0o600
    key = DirKeys(str(tmp_path / "keys")).psk("t", "b", "a")
    assert key is not None
    peer = next(c.after for c in made.changes if c.after is not None and c.after.kind == "peer")
    assert peer.attrs["preshared_key"] == fingerprint(key)
    again = plan_node(ctx, desired_of(model, ctx))  # now known: its fingerprint
    assert _peer_of(again.desired).attrs["preshared_key"] == fingerprint(key)


def test_psk_paths_are_per_pair_and_shared(tmp_path: Path) -> None:
    keys = DirKeys(str(tmp_path))
    one = keys.make_psk("t", "a", "b")
    assert keys.make_psk("t", "b", "a") == one == keys.psk("t", "a", "b")
    mode = os.stat(psk_path(str(tmp_path), "t", "a", "b")).st_mode & 0o777
    assert mode == 0o600


# --------------------------------------------------------------------------- 4: host names


def test_a_host_name_endpoint_is_compared_as_wireguard_stores_it(tmp_path: Path) -> None:
    model = compile_spec(
        str(write(tmp_path, "s.herc", spec(endpoint_b="vpn.example:51820"))), use_lock=False
    ).ir
    asked: list[str] = []

    def resolve(endpoint: str) -> str:  # fake DNS
        asked.append(endpoint)
        return {"vpn.example:51820": "192.0.2.7:51820"}[endpoint]

    def context(live: dict[str, Resource]) -> NodeContext:
        system = LiveSystem(FakeReader(state=live), wireguard=None, resolve=resolve)  # type: ignore[arg-type]
        return NodeContext.of("a", Naming(), None, tmp_path / "state", system)

    want = desired_of(model, context({}))
    assert _peer_of(want).attrs["endpoint"] == "vpn.example:51820"  # desired_state reads nothing
    live = dict(want)
    peer = _peer_of(live)
    live[peer.address] = replace(peer, attrs={**peer.attrs, "endpoint": "192.0.2.7:51820"})
    planned = plan_node(context(live), want)
    assert planned.plan.no_changes and asked == ["vpn.example:51820"]
    live[peer.address] = replace(peer, attrs={**peer.attrs, "endpoint": "192.0.2.8:51820"})
    moved = plan_node(context(live), want).plan
    assert (
        '      ~ endpoint = "192.0.2.8:51820" -> "vpn.example:51820" (192.0.2.7:51820)\n'
        in render_plan(moved)
    )
    (change,) = moved.changes
    assert plan_to_json(moved)["resource_changes"][0]["as_written"] == {
        "endpoint": "vpn.example:51820"
    }
    assert change.after is not None and change.after.attrs["endpoint"] == "192.0.2.7:51820"
    path = tmp_path / "moved.plan"
    save_plan(moved, "a", live, want, str(path))
    again = sniff_plan(str(path))
    assert again is not None and again.plan == moved  # the spelling travels with the plan
    created = render_plan(plan_node(context({}), want).plan)
    assert '      + endpoint      = "vpn.example:51820" (192.0.2.7:51820)\n' in created


# --------------------------------------------------------------------------- 5: saved plans


def _saved(tmp_path: Path, name: str, naming: Naming, with_keys: bool) -> Path:
    r = Resource("netns", "herc-t")
    plan = Plan((Change(Action.CREATE, r.address, None, r),))
    data = plan_to_data(plan, "a", {}, state_of([r]), naming=naming, with_keys=with_keys)
    return write(tmp_path, name, json.dumps(data))


def test_a_saved_plan_is_known_by_its_content(tmp_path: Path) -> None:
    path = _saved(tmp_path, "beta.plan", Naming(), True)
    found = sniff_plan(str(path))
    assert found is not None and found.node == "a"
    assert sniff_plan(str(write(tmp_path, "s.herc", spec()))) is None
    assert sniff_plan(str(write(tmp_path, "s.herc.yaml", '{"network": {}}\n'))) is None
    fifo = tmp_path / "fifo.herc"
    os.mkfifo(fifo)
    assert sniff_plan(str(fifo)) is None and sniff_plan("/dev/zero") is None  # not read
    old = write(tmp_path, "old.plan", json.dumps({"format_version": 0, "live_fingerprint": "x"}))
    with pytest.raises(Exception, match=f"format version {FORMAT_VERSION}"):
        sniff_plan(str(old))


def test_a_saved_plan_names_what_differs(tmp_path: Path) -> None:
    prefixed = replace(Naming(), netns_prefix="x-herc-", workload_netns_prefix="x-herc-w-")
    saved = sniff_plan(str(_saved(tmp_path, "p.json", prefixed, True)))
    assert saved is not None
    check_made_like(saved, prefixed, with_keys=True)
    with pytest.raises(PlanMismatch, match=r"--netns-prefix 'x-'.*not ''"):
        check_made_like(saved, Naming(), with_keys=True)
    with pytest.raises(PlanMismatch, match="with --keys"):
        check_made_like(saved, prefixed, with_keys=False)


def test_hercc_apply_runs_a_saved_plan_of_any_name_as_a_plan(tmp_path: Path) -> None:
    path = _saved(tmp_path, "beta.plan", Naming(), False)
    done = hercc("apply", str(path), "--node", "b", cwd=tmp_path)
    assert done.returncode == 1
    assert "was made for node a, not b" in done.stderr, done.stderr  # read as a plan


# --------------------------------------------------------------------------- 6: the lock


def test_lock_excludes_and_times_out(tmp_path: Path) -> None:
    path = tmp_path / "state" / "a.lock"
    path.parent.mkdir()  # the caller makes the directory: a lock never brings it back
    waited: list[int | None] = []
    with locked(path, what="node a"):
        with pytest.raises(LockTimeout) as info, locked(path, what="node a", timeout=0):
            pass
        assert f"held by PID {os.getpid()}" in str(info.value)
        start = time.monotonic()
        with (
            pytest.raises(LockTimeout),
            locked(path, what="node a", timeout=0.3, on_wait=waited.append),
        ):
            pass
        assert time.monotonic() - start >= 0.3 and waited == [os.getpid()]
    with locked(path, what="node a", timeout=0):  # released
        pass
    with locked(path, what="node a", shared=True), locked(path, what="node a", shared=True):
        pass  # plans share it


def test_lock_waits_for_a_holder_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hercc.sysio.lock import locked\n"
            f"with locked({str(path)!r}, what='node a'):\n"
            "    print('held', flush=True); time.sleep(0.5)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        waited: list[int | None] = []
        with locked(path, what="node a", on_wait=waited.append):
            assert holder.poll() is not None or holder.wait(5) == 0
        assert waited == [holder.pid]
    finally:
        holder.wait(10)
