"""IPsec links live: plan/apply into a real charon per node, against the lab's strongSwan far side.

tests/lab_ipsec.herc: node beta's link `hq-branch` to 192.0.2.254. The lab
(lab/enterprise_ipsec.py) runs beta's charon in its underlay namespace, a
responder at 192.0.2.254 on the underlay bridge, and a host in each traffic
selector. The hosts ping each other through the tunnel while tshark, in the
underlay namespace on the responder's bridge port (a bridge's own device
sees only what is flooded to it), sees only ESP in UDP 4500 between the two
ends. Plan
after apply says "No changes"; a proposal change is planned as `~` and
reloaded; a dropped link is unloaded with its SAs, and comes back. Through
the CLI (`hercc lab`, `hercc plan`, `hercc build`), a unique secret value
reaches no output, saved plan, log, ir.json or manifest, and the lab's
`up`, `plan` and `check` say what docs/lab.md shows. Needs root,
iproute2, wireguard-go, strongSwan's charon and tshark; skips with the reason
otherwise.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.lab import Lab, persistent
from hercc.lab import nodes as lab_nodes
from hercc.lab.enterprise_ipsec import IpsecSite, charon_socket, sites
from hercc.lab.harness import missing_requirements
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.plan.node_service import live_system
from hercc.resources.model import state_of
from hercc.state.ipsec import ViciSocket
from tests import strongswan
from tests.labtools import lab, netns_with

SPEC = Path(__file__).parent / "lab_ipsec.herc"
REASON = missing_requirements(("ip", "wireguard-go", "ping", "tshark")) or strongswan.available()
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]
CAPTURE = 8  # seconds tshark listens, at most


@pytest.fixture(scope="module")
def ipsec_lab() -> Iterator[Lab]:
    with Lab(compile_spec(str(SPEC)).ir) as running:
        yield running


def _site(lab_: Lab) -> IpsecSite:
    (site,) = sites(lab_.model, lab_.topology, lab_.node_dir)
    return site


def _ping(ns: str, address: str, count: int = 3) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2"]
    return subprocess.run([*argv, address], capture_output=True, text=True, timeout=20)


def _node(lab_: Lab, node: str) -> lab_nodes.LabNode:
    return next(n for n in lab_._nodes if n.node == node)


def _charon(lab_: Lab) -> ViciSocket:
    return ViciSocket(str(charon_socket(lab_.node_dir, "beta")))


def _apply(lab_: Lab, n: lab_nodes.LabNode) -> str:
    """Plan and apply `n` as the lab does; the plan's text."""
    from hercc.cli.views.plan import render_plan

    plan, _live = lab_nodes.plan_node(n, n.desired, lab_.node_dir, live_system())
    lab_nodes.apply_node(n, plan, lab_.node_dir, live_system())
    return render_plan(plan)


def _no_changes(lab_: Lab, n: lab_nodes.LabNode) -> bool:
    plan, _live = lab_nodes.plan_node(n, n.desired, lab_.node_dir, live_system())
    return plan.no_changes


def test_the_protected_subnets_ping_through_strongswan_and_the_wire_carries_only_esp(
    ipsec_lab: Lab,
) -> None:
    s = _site(ipsec_lab)
    local, remote = s.local_addr.split("/")[0], s.host_addr.split("/")[0]
    fields = ["ip.src", "ip.dst", "udp.srcport", "udp.dstport", "frame.protocols"]
    argv = ["ip", "netns", "exec", ipsec_lab.topology.underlay_ns, "tshark", "-n", "-l", "-i"]
    argv += [s.far_port, "-a", f"duration:{CAPTURE}", "-f", "ip", "-T", "fields"]
    argv += [x for f in fields for x in ("-e", f)]
    capture = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + CAPTURE
        assert capture.stderr is not None
        while "Capturing on" not in capture.stderr.readline():  # listening from here on
            assert time.monotonic() < deadline and capture.poll() is None, "tshark did not start"
        time.sleep(1)  # it says so a moment before it captures
        there = _ping(s.local_ns, remote)
        back = _ping(s.host_ns, local)
    finally:
        out, _err = capture.communicate(timeout=CAPTURE + 10)
    assert there.returncode == 0, there.stdout + there.stderr
    assert back.returncode == 0, back.stdout + back.stderr
    packets = [line.split("\t") for line in out.splitlines() if line.strip()]
    protected = {local, remote}
    assert not [p for p in packets if protected & set(p[:2])], "plain traffic on the underlay"
    assert not [p for p in packets if "icmp" in p[4]], packets
    esp = [p for p in packets if p[4].endswith(":udp:udpencap:esp")]
    assert {(p[0], p[1]) for p in esp} == {("198.51.100.7", s.remote), (s.remote, "198.51.100.7")}
    assert all(p[2] == p[3] == "4500" for p in esp), esp
    assert len(esp) >= 12, packets  # 3 pings each way, a request and a reply each


def test_plan_after_apply_says_no_changes(ipsec_lab: Lab) -> None:
    for n in ipsec_lab._nodes:
        assert _no_changes(ipsec_lab, n), n.node
    conns = _charon(ipsec_lab).stream("list-conns", "list-conn")
    assert [name for event in conns for name in event] == ["hq-branch"]


def _changed(lab_: Lab, n: lab_nodes.LabNode, proposals: tuple[str, ...]) -> lab_nodes.LabNode:
    """`n` with its link's proposals (none: without the link)."""
    (hq,) = lab_.model.enterprise
    links = tuple(dataclasses.replace(i, proposals=proposals) for i in hq.ipsec if proposals)
    model = dataclasses.replace(lab_.model, enterprise=(dataclasses.replace(hq, ipsec=links),))
    return dataclasses.replace(n, desired=state_of(desired_state(model, n.node, n.naming, n.keys)))


def test_a_proposal_change_is_reloaded_and_a_dropped_link_unloaded(ipsec_lab: Lab) -> None:
    s = _site(ipsec_lab)
    remote = s.host_addr.split("/")[0]
    beta = _node(ipsec_lab, "beta")
    faster = _changed(ipsec_lab, beta, ("aes128-sha256-modp2048",))
    shown = _apply(ipsec_lab, faster)
    assert "~ ipsec.hq-branch" in shown and "Plan: 0 to add, 1 to change, 0 to destroy." in shown
    sas = _charon(ipsec_lab).stream("list-sas", "list-sa")
    (ike,) = [sa for event in sas for sa in event.values()]
    assert (ike["encr-alg"], ike["encr-keysize"]) == ("AES_CBC", "128")
    assert _no_changes(ipsec_lab, faster)
    assert _ping(s.local_ns, remote).returncode == 0

    dropped = _changed(ipsec_lab, beta, ())
    shown = _apply(ipsec_lab, dropped)
    assert "- ipsec.hq-branch" in shown
    assert _charon(ipsec_lab).stream("list-conns", "list-conn") == []
    assert _charon(ipsec_lab).stream("list-sas", "list-sa") == []
    assert _ping(s.local_ns, remote, count=1).returncode != 0
    assert _no_changes(ipsec_lab, dropped)

    _apply(ipsec_lab, beta)  # back as the lab made it
    assert _no_changes(ipsec_lab, beta)
    assert _ping(s.local_ns, remote).returncode == 0


def _doc_output(command: str) -> str:
    """The output docs/lab.md's IPsec section shows for `hercc COMMAND ...`."""
    doc = (Path(__file__).parent.parent / "docs" / "lab.md").read_text()
    section = doc.split("## IPsec links")[1].split("\n## ")[0]
    for block in re.findall(r"```text\n(.*?)```", section, re.DOTALL):
        first, _, rest = block.partition("\n")
        if first.startswith(f"$ hercc {command} "):
            return rest
    raise AssertionError(f"docs/lab.md shows no `hercc {command}`")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_no_secret_reaches_outputs_plans_logs_ir_or_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = "leak-" + secrets.token_hex(12)
    monkeypatch.setenv("HERC_SECRET_HQ_BRANCH_PSK", marker)
    name = "ipsec"  # docs/lab.md's: its transcript is checked here too
    seen: list[str] = []
    code, out, err = lab("up", str(SPEC), "--name", name)
    assert code == 0, err
    state = persistent.load_state(name)
    try:
        seen += [out, err]
        up = re.sub(r"up in [0-9.]+ s", "up in X s", out + err)
        assert up == re.sub(r"up in [0-9.]+ s", "up in X s", _doc_output("lab up"))
        for argv in (("plan", str(SPEC)), ("plan", str(SPEC), "--json"), ("check",)):
            code, out, err = lab(*argv, "--name", name)
            assert code == 0, out + err
            seen += [out, err]
            if "--json" not in argv:
                assert out == _doc_output(f"lab {argv[0]}"), out
        assert "ipsec:hq-branch" in out  # lab check pinged across the tunnel
        saved = tmp_path / "beta.plan"
        common = ["--node", "beta", "--state-dir", state.apply_dir, "--netns-prefix", "leak-"]
        common += ["--vici", str(charon_socket(state.apply_dir, "beta"))]
        plans = [_cli("plan", str(SPEC), *common, *extra) for extra in ((), ("--json",))]
        plans.append(_cli("plan", str(SPEC), *common, "-o", str(saved)))
        assert all(code in (0, 2) for code, _out, _err in plans), plans
        seen += [text for _code, out, err in plans for text in (out, err)]
        seen.append(saved.read_text())
        code, out, err = _cli("build", str(SPEC), "-o", str(tmp_path / "out"))
        assert code == 0, err
        built = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert {"ir.json", "manifest.json"} <= {p.name for p in built}
        seen += [out, err, *(p.read_text(errors="replace") for p in built)]
        kept = Path(state.apply_dir) / "ipsec.secrets.yaml"
        assert kept.stat().st_mode & 0o777 == 0o600 and marker in kept.read_text()  # it was used
        files = [p for p in Path(state.directory).rglob("*") if p.is_file() and p != kept]
        assert any(p.name.endswith(".charon.log") for p in files)
        seen += [p.read_text(errors="replace") for p in files]
    finally:
        code, out, err = lab("down", "--name", name)
        seen += [out, err]
    assert code == 0, err
    assert not netns_with(state.prefix)
    assert not [text[:200] for text in seen if marker in text]


ANNEX = """  ipsec annex {
    node      beta
    remote    192.0.2.253
    local_ts  10.20.0.0/17
    remote_ts 192.168.RTS.0/24
    auth      psk secret("hq-annex-psk")
    proposals "aes256-sha256-modp2048"
  }
}
"""


def _responders(name: str) -> dict[str, int]:
    return {d.name: d.pid for d in persistent.load_state(name).daemons if d.role == "charon"}


def test_lab_apply_builds_a_new_links_far_side_and_keeps_the_others(tmp_path: Path) -> None:
    """A link the spec adds (sorting before the running one) gets its responder before beta
    applies it; a changed link gets a new one; the running link keeps its responder and SAs.
    beta re-created (a new endpoint) gets a new charon in its new namespace."""
    name = f"ia{os.getpid() % 100000}"
    base = SPEC.read_text().rstrip()
    assert base.endswith("}")
    specs = {}
    for rts in ("50", "60"):
        specs[rts] = tmp_path / f"annex{rts}.herc"
        specs[rts].write_text(base[:-1] + ANNEX.replace("RTS", rts))
    specs["moved"] = tmp_path / "moved.herc"  # beta re-created at a new endpoint
    specs["moved"].write_text(specs["60"].read_text().replace("198.51.100.7", "198.51.100.8"))
    persistent.down_lab(name)
    code, _out, err = lab("up", str(SPEC), "--name", name)
    assert code == 0, err
    prefix = persistent.load_state(name).prefix
    try:
        kept = _responders(name)["ir-hq-branch"]
        code, out, err = lab("apply", "--name", name, str(specs["50"]))
        assert code == 0, out + err
        assert "+ ipsec.hq-annex" in out and "ipsec.hq-branch" not in out
        first = _responders(name)
        assert first["ir-hq-branch"] == kept and "ir-hq-annex" in first
        code, out, err = lab("check", "--name", name)
        assert code == 0, out + err
        assert "ipsec:hq-annex:local" in out and "ipsec:hq-branch:local" in out
        code, out, err = lab("apply", "--name", name, str(specs["60"]))
        assert code == 0, out + err
        assert "~ ipsec.hq-annex" in out
        second = _responders(name)
        assert second["ir-hq-branch"] == kept and second["ir-hq-annex"] != first["ir-hq-annex"]
        code, out, err = lab(
            "exec",
            "--name",
            name,
            "ipsec:hq-annex:local",
            "--",
            "ping",
            "-c2",
            "-W2",
            "192.168.60.254",
        )
        assert code == 0, out + err
        code, out, err = lab("check", "--name", name)
        assert code == 0, out + err
        code, out, err = lab("apply", "--name", name, str(specs["moved"]))
        assert code == 0, out + err
        assert "1 to replace" in out
        third = _responders(name)  # a charon in beta's new namespace, both responders new
        assert not set(third.values()) & set(second.values()), (second, third)
        code, out, err = lab("check", "--name", name)
        assert code == 0, out + err
        assert "ipsec:hq-annex:local" in out and "ipsec:hq-branch:local" in out
    finally:
        code, _out, err = lab("down", "--name", name)
    assert code == 0, err
    assert not netns_with(prefix)
