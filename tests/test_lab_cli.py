"""`hercc lab up|check|status|exec|down`: labs that outlive the command.

The parser, names and rendering are checked anywhere. Live tests need root,
iproute2, nftables, wireguard-go, wg and ping, and skip with the reason
otherwise. Every lab here has a per-run name (t<pid>...), lives in the run's
own state directory (conftest.lab_root) and is removed with `lab down` by
its fixture, even when a test fails.

The command runs in-process (hercc.cli.main.main) or as `python -m hercc`
(a separate process that exits while the lab keeps running).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from hercc.cli import main as cli
from hercc.cli.views.lab import render_matrix
from hercc.diagnostics import LabError
from hercc.lab import harness, nodes, persistent
from hercc.lab.persistent.probes import Probe
from hercc.lab.persistent.statefile import alive, state_file
from hercc.lab.topology import PREFIX_MAX, prefix_for_lab
from hercc.resources.naming import IFNAME_MAX
from hercc.sysio.procfs import stop
from tests.conftest import EXAMPLES
from tests.labtools import lab, netns_with

QUICKSTART = str(EXAMPLES / "quickstart.herc")
REFERENCE = str(EXAMPLES / "reference.herc")
REASON = harness.missing_requirements()
RUN = f"t{os.getpid()}"


def lab_process(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`hercc lab ARGV` as a separate Python process."""
    return subprocess.run(
        [sys.executable, "-m", "hercc", "lab", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_gone(state: persistent.LabState) -> None:
    assert netns_with(state.prefix) == []
    assert [i.name for i in state.interfaces if alive(i)] == []
    assert [i.socket for i in state.interfaces if Path(i.socket).exists()] == []
    assert not state_file(state.name).exists()
    assert not Path(state.directory).exists() and not Path(state.keys_dir).exists()


def started(spec: str, name: str, *, separate: bool) -> Iterator[persistent.LabState]:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    persistent.down_lab(name)  # a leftover of a crashed run with this pid
    try:
        if separate:
            done = lab_process("up", "--name", name, spec)
            assert done.returncode == 0, done.stderr
        else:
            code, _, err = lab("up", "--name", name, spec)
            assert code == 0, err
        yield persistent.load_state(name)
    finally:
        code, _, err = lab("down", "--name", name)
        assert code == 0, err


@pytest.fixture(scope="module")
def quick() -> Iterator[persistent.LabState]:
    """quickstart, brought up by a process that has exited since."""
    yield from started(QUICKSTART, RUN + "q", separate=True)


@pytest.fixture(scope="module")
def ref() -> Iterator[persistent.LabState]:
    """reference.herc, brought up in this process, beside `quick`."""
    yield from started(REFERENCE, RUN + "r", separate=False)


# ---------------------------------------------------------------- no root needed


def test_exec_takes_the_command_after_the_separator() -> None:
    args = cli.parser().parse_args(["lab", "exec", "--name", "x", "home", "--", "ip", "-br"])
    assert (args.name, args.target, args.argv) == ("x", "home", ["ip", "-br"])
    assert cli.parser().parse_args(["lab", "status"]).name is None
    assert cli.parser().parse_args(["lab", "down"]).name == "lab"


def test_prefixes_derive_from_the_name_and_fit() -> None:
    names = ["lab", "a", "abcdef", "t1234567q", "My-Lab.2", "x" * 64]
    prefixes = [prefix_for_lab(n) for n in names]
    assert len(set(prefixes)) == len(prefixes)
    assert prefix_for_lab("lab") == prefix_for_lab("lab") and prefixes[0].endswith("lab")
    for p in prefixes:
        assert p.startswith("h") and len(p) <= PREFIX_MAX
        assert len(f"{p}w999") <= IFNAME_MAX
    with pytest.raises(LabError, match="lab name"):
        persistent.check_name("../etc")


def test_refuses_without_root_or_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness.os, "geteuid", lambda: 1000)
    code, _, err = lab("check", "--name", "x")
    assert code == 1 and "needs root" in err
    monkeypatch.setattr(harness.os, "geteuid", lambda: 0)
    real = harness.shutil.which
    monkeypatch.setattr(harness.shutil, "which", lambda t: None if t == "wireguard-go" else real(t))
    code, _, err = lab("up", QUICKSTART)
    assert code == 1 and "wireguard-go" in err


def test_matrix_marks() -> None:
    eps = [
        SimpleNamespace(name="a@n", network="n", kind="node"),
        SimpleNamespace(name="b@n", network="n", kind="node"),
        SimpleNamespace(name="c@m", network="m", kind="node"),
    ]
    state = SimpleNamespace(name="x", endpoints=eps)

    def p(src: str, dst: str, fam: int, ok: bool) -> Probe:
        return Probe(src, dst, "10.0.0.1" if fam == 4 else "fd00::1", fam, "n", ok)

    results = [
        p("a@n", "a@n", 4, True),
        p("a@n", "a@n", 6, True),
        p("a@n", "b@n", 4, False),
        p("a@n", "b@n", 6, True),
        p("b@n", "a@n", 4, False),
        p("b@n", "a@n", 6, False),
    ]
    text = render_matrix(state, results)
    rows = {ln.split()[1]: ln.split()[2:] for ln in text.splitlines() if ln[:3].strip().isdigit()}
    # rows and columns by network (m before n): c@m, a@n, b@n
    assert rows["a@n"] == ["·", "ok", "-4"] and rows["b@n"][:2] == ["·", "--"]
    assert rows["c@m"][1:] == ["·", "·"]
    assert "FAIL a@n -> b@n 10.0.0.1 (IPv4, n)" in text and "3/6 pings answered" in text


# ---------------------------------------------------------------- live


@pytest.mark.live
def test_up_leaves_the_lab_running(quick: persistent.LabState) -> None:
    assert quick.status == "up" and len(quick.interfaces) == 4  # 3 nodes' networks, 1 tunnel
    for iface in quick.interfaces:
        assert iface.pid is not None and alive(iface), iface
        stat = Path(f"/proc/{iface.pid}/stat").read_text()
        assert stat.split(") ")[0].endswith("(wireguard-go")
    assert set(netns_with(quick.prefix)) == set(quick.namespaces)
    # the overlay is `hercc apply`'s: each node's registry, PID records and logs
    from hercc.state.registry import OwnedRegistry

    overlay = set()
    for node in ("edge1", "edge2", "home"):
        overlay |= OwnedRegistry(node, quick.apply_dir).load()
        pids = nodes.recorded_pids(quick.apply_dir, node)
        assert pids == {i.name: i.pid for i in quick.interfaces if i.node == node}
    assert overlay == {e.ns for e in quick.endpoints}
    assert all(Path(i.log).is_file() for i in quick.interfaces)
    code, out, _ = lab("status", "--name", quick.name)
    assert code == 0 and out.count(" alive;") == 4 and "2/2 peers handshaken" in out
    assert "11/11 present" in out


@pytest.mark.live
def test_up_refuses_an_existing_name(quick: persistent.LabState) -> None:
    code, _, err = lab("up", "--name", quick.name, QUICKSTART)
    assert code == 1 and f"hercc lab down --name {quick.name}" in err
    assert all(alive(i) for i in quick.interfaces)


@pytest.mark.live
def test_two_labs_coexist_and_check_ok(
    quick: persistent.LabState, ref: persistent.LabState
) -> None:
    assert set(quick.namespaces).isdisjoint(ref.namespaces)
    # ref: 72, 4 across its IPsec link, 4 across its VXLAN
    for state, pings in ((quick, 32), (ref, 80)):
        code, out, _ = lab("check", "--name", state.name)
        assert code == 0, out
        assert f"{pings}/{pings} pings answered" in out
        code, out, _ = lab("check", "--name", state.name, "--json")
        data = json.loads(out)
        assert code == 0 and data["ok"] is True
        assert len(data["results"]) == pings and all(r["ok"] for r in data["results"])
        assert {r["family"] for r in data["results"]} == {"ipv4", "ipv6"}
        assert {"blog", "web", "api"} & {r["from"] for r in data["results"]}
    code, out, _ = lab("status")
    assert code == 0 and f"lab {quick.name!r}" in out and f"lab {ref.name!r}" in out


@pytest.mark.live
def test_exec(quick: persistent.LabState) -> None:
    done = lab_process("exec", "--name", quick.name, "home", "--", "ip", "-br", "addr")
    assert done.returncode == 0 and "100.64.0.2/30" in done.stdout, done.stderr
    edge1 = next(e for e in quick.endpoints if e.name == "edge1@demo")
    for addr in edge1.addresses:
        done = lab_process("exec", "--name", quick.name, "blog", "--", "ping", "-c1", addr)
        assert done.returncode == 0 and "1 received" in done.stdout, done.stdout
    done = lab_process("exec", "--name", quick.name, "home@demo", "--", "sh", "-c", "exit 7")
    assert done.returncode == 7
    done = lab_process("exec", "--name", quick.name, "hom", "--", "true")
    assert done.returncode == 2 and 'did you mean "home"' in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.live
def test_check_fails_when_a_node_is_down_then_down_removes_everything() -> None:
    if REASON is not None:
        pytest.skip(f"live lab: {REASON}")
    name = RUN + "b"
    persistent.down_lab(name)
    try:
        code, _, err = lab("up", "--name", name, QUICKSTART)
        assert code == 0, err
        state = persistent.load_state(name)
        edge2 = next(i for i in state.interfaces if i.node == "edge2")
        assert edge2.pid is not None and edge2.start_time is not None
        assert stop(edge2.pid, edge2.start_time)
        code, out, _ = lab("check", "--name", name, "--json")
        data = json.loads(out)
        failed = {(r["from"], r["to"]) for r in data["results"] if not r["ok"]}
        assert code == 1 and data["ok"] is False
        assert ("blog", "edge2@demo") in failed and ("home@demo", "edge1@demo") not in failed
        assert all(r["ok"] for r in data["results"] if "edge2@demo" not in (r["from"], r["to"]))
        probes = [
            Probe(r["from"], r["to"], r["address"], int(r["family"][3:]), r["network"], r["ok"])
            for r in data["results"]
        ]
        text = render_matrix(state, probes)  # what `check` without --json prints
        assert "FAIL blog -> edge2@demo 10.42.1.1 (IPv4, demo)" in text
        assert "FAIL home@demo -> edge1@demo" not in text
        code, out, _ = lab("status", "--name", name)
        assert code == 1 and "DEAD" in out
    finally:
        code, _, err = lab("down", "--name", name)
    assert code == 0, err
    assert_gone(state)
    code, _, err = lab("down", "--name", name)
    assert code == 0 and "nothing to do" in err
    code, _, err = lab("check", "--name", name)
    assert code == 1 and f"no lab named {name!r}" in err


@pytest.mark.live
def test_down_of_a_separate_process_lab(quick: persistent.LabState) -> None:
    """Last: the separate process's lab goes down through another separate process."""
    done = lab_process("down", "--name", quick.name)
    assert done.returncode == 0, done.stderr
    assert_gone(quick)
    assert lab_process("down", "--name", quick.name).returncode == 0


def test_usage_errors_are_not_tracebacks() -> None:
    done = lab_process("exec", "--name", "../x", "home", "--", "true")
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    assert cli.parser().parse_args(["lab", "up", "x.herc"]).spec == "x.herc"
