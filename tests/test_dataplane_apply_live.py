"""The dataplane's programs attached and detached by `hercc apply`, live, through the node service.

The fixtures are tests/test_apply_live.py's (a per-run prefix, an underlay
namespace). Node a of a small spec with two workloads gets its programs:
attached once, `plan` then says No changes, and a second `hercc apply` (a
fresh process, which reads what runs) attaches nothing twice. Turning
netflow on changes the header (the flow map appears): the programs are
replaced. `fastpath xdp` puts native XDP on the veths, with TC behind it
(what XDP passes, TC forwards), and keeps TC on the WireGuard device (the
fallback shows in the plan). A foreign filter on
another device is never touched, and one on a hook we want is refused.
Dropping the `dataplane` block detaches everything and unpins it. And a
ping between two workloads crosses the namespace without its stack
forwarding a packet, with `fastpath tc` and with `xdp` (and, as a control,
by the stack without a dataplane).
Skipped, with the reason, without root, WireGuard tools, BCC or BPF.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli.views.plan import NO_CHANGES
from hercc.dataplane.attach import pin_root
from hercc.dataplane.config import DEFAULT_FLOW_ENTRIES
from hercc.dataplane.program import TC
from hercc.state.bpf_load import forget_namespace
from hercc.state.dataplane import compile_program
from hercc.state.errors import BccUnavailable
from tests.test_apply_live import NET, PREFIX, WG, Node, changes, keys_init, live_reason, sh

pytestmark = pytest.mark.live

NS = f"{PREFIX}herc-{NET}"
VETHS = ("hv-web", "hv-other")
WORKLOAD_NS = (f"{PREFIX}herc-w-web", f"{PREFIX}herc-w-other")
FOREIGN_DEV = "fx0"
CBPF_PASS = "1,6 0 0 0"  # a classic BPF filter (return 0), someone else's
NETFLOW = "monitor {\n  netflow {\n    collector 192.0.2.99:2055\n  }\n}\n"


def spec_text(fastpath: str | None, *, netflow: bool = False) -> str:
    parts = [
        f"network {NET} {{\n  range 10.77.0.0/16\n}}\n",
        f"node a {{\n  network  {NET}\n  endpoint 10.255.7.1\n}}\n",
        f"node b {{\n  network  {NET}\n  endpoint 10.255.7.2:51820\n}}\n",
        "workload web {\n  node    a\n  address 10.77.0.20\n}\n",
        "workload other {\n  node    a\n  address 10.77.0.21\n}\n",
    ]
    if fastpath is not None:
        parts.append(f"dataplane {{\n  fastpath {fastpath}\n}}\n")
    if netflow:
        parts.append(NETFLOW)
    return "\n".join(parts)


def _bpf_reason() -> str | None:
    """Why BPF programs cannot be compiled and loaded here (compiling the TC one to find out)."""
    try:
        header = "#define FASTPATH_XDP 0\n#define FASTPATH_TC 1\n#define ACCOUNTING 0\n"
        header += "#define FLOW_MAP_ENTRIES 64\n#define ROUTE_MAP_ENTRIES 64\n"
        compile_program(TC, header).close()
    except BccUnavailable as exc:
        return str(exc)
    return None


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    reason = live_reason() or _bpf_reason()
    if reason is not None:
        pytest.skip(reason)
    if any(Path("/run/netns").glob(f"{PREFIX}*")):
        pytest.skip(f"names of this run ({PREFIX}*) are in use")
    env = Node(tmp_path)
    try:
        yield env
    finally:
        env.close()
        forget_namespace(NS)  # this run's pins, should a step have failed


def filters(dev: str) -> list[dict[str, object]]:
    out = sh("tc", "-n", NS, "-j", "filter", "show", "dev", dev, "ingress")
    return [f for f in json.loads(out or "[]") if "options" in f]


def xdp_prog(dev: str) -> dict[str, object] | None:
    (link,) = json.loads(sh("ip", "-n", NS, "-j", "-d", "link", "show", dev))
    prog = link.get("xdp", {}).get("prog")
    return prog if isinstance(prog, dict) else None


def xdp_mode(dev: str) -> object:
    (link,) = json.loads(sh("ip", "-n", NS, "-j", "-d", "link", "show", dev))
    return link.get("xdp", {}).get("mode")


def offloads(ns: str) -> list[bool]:
    """TX checksum offload and GRO of a workload's end of its veth."""
    (features,) = json.loads(sh("ip", "netns", "exec", ns, "ethtool", "--json", "-k", "eth0"))
    return [features[f]["active"] for f in ("tx-checksumming", "generic-receive-offload")]


def bpf_names(dev: str) -> list[str]:
    return [str(f["options"]["bpf_name"]) for f in filters(dev) if f["kind"] == "bpf"]  # type: ignore[index]


def pins() -> list[str]:
    root = Path(pin_root("a", NS))
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def applied(env: Node, spec: Path) -> str:
    rc, out, err = env.apply(spec)
    assert rc == 0, err
    return out


def plan_changes(env: Node, spec: Path) -> dict[str, str]:
    rc, out, err = env.plan(spec, "--json")
    assert rc == 0, err
    return {a: c for a, c in changes(json.loads(out)).items() if a.startswith("bpf.")}


def no_changes(env: Node, spec: Path) -> None:
    rc, out, err = env.plan(spec)
    assert rc == 0, err
    assert NO_CHANGES in out


def test_attach_no_double_attach_replace_and_detach(node: Node) -> None:
    env = node
    tc = env.tmp / "tc.herc"
    tc.write_text(spec_text("tc"), encoding="utf-8")
    keys_init(env, tc)
    assert plan_changes(env, tc) == {
        f"bpf.{NS}/{WG}/tc-ingress": "create",
        f"bpf.{NS}/hv-web/tc-ingress": "create",
        f"bpf.{NS}/hv-other/tc-ingress": "create",
    }
    applied(env, tc)
    assert bpf_names(WG) == ["fastpath_tc_l3"]
    assert [bpf_names(v) for v in VETHS] == [["fastpath_tc_eth"], ["fastpath_tc_eth"]]
    assert len(pins()) == 1  # one object per namespace and hook, shared
    no_changes(env, tc)
    # a fresh hercc reads what runs: nothing is attached twice
    out = applied(env, tc)
    assert NO_CHANGES in out
    assert bpf_names(WG) == ["fastpath_tc_l3"]
    assert [len(filters(v)) for v in VETHS] == [1, 1]

    # a foreign filter on another device is foreign: never touched
    sh("ip", "-n", NS, "link", "add", FOREIGN_DEV, "type", "veth", "peer", "name", "fx1")
    sh("tc", "-n", NS, "qdisc", "add", "dev", FOREIGN_DEV, "clsact")
    sh("tc", "-n", NS, "filter", "add", "dev", FOREIGN_DEV, "ingress", "bpf", "bytecode", CBPF_PASS)
    no_changes(env, tc)

    # netflow on: the header gets a flow map, every program is a new one
    flows = env.tmp / "flows.herc"
    flows.write_text(spec_text("tc", netflow=True), encoding="utf-8")
    rc, out, err = env.plan(flows)
    assert rc == 0, err
    assert f"-/+ bpf.{NS}/{WG}/tc-ingress" in out
    assert f"flow_entries = null -> {DEFAULT_FLOW_ENTRIES} # forces replacement" in out
    assert set(plan_changes(env, flows).values()) == {"replace"}
    before = pins()
    applied(env, flows)
    no_changes(env, flows)
    assert len(pins()) == 1 and pins() != before  # the old object was unpinned
    assert bpf_names(WG) == ["fastpath_tc_l3"]
    assert [len(filters(v)) for v in VETHS] == [1, 1]

    # xdp: the veths get native XDP with TC behind it, the WireGuard device stays on TC
    xdp = env.tmp / "xdp.herc"
    xdp.write_text(spec_text("xdp", netflow=True), encoding="utf-8")
    rc, out, err = env.plan(xdp)
    assert rc == 0, err
    assert f"bpf.{NS}/{WG}/tc-ingress # fallback to TC: layer-3 device" in out
    assert f"bpf.{NS}/hv-web/tc-ingress # TC behind XDP: forwards what XDP passes" in out
    assert plan_changes(env, xdp) == {
        f"bpf.{NS}/{WG}/tc-ingress": "replace",
        f"bpf.{NS}/hv-web/tc-ingress": "replace",
        f"bpf.{NS}/hv-other/tc-ingress": "replace",
        f"bpf.{NS}/hv-web/xdp": "create",
        f"bpf.{NS}/hv-other/xdp": "create",
    }
    applied(env, xdp)
    no_changes(env, xdp)
    assert [bpf_names(v) for v in VETHS] == [["fastpath_tc_after_xdp"]] * 2
    assert [(xdp_prog(v) or {}).get("name") for v in VETHS] == ["fastpath_xdp"] * 2
    assert [xdp_mode(v) for v in VETHS] == [1, 1]  # native (driver) mode
    assert [offloads(w) for w in WORKLOAD_NS] == [[False, True]] * 2  # tx off, GRO on
    # someone turns TX checksum offload back on: the plan puts it right
    sh("ip", "netns", "exec", WORKLOAD_NS[0], "ethtool", "-K", "eth0", "tx", "on")
    assert plan_changes(env, xdp) == {f"bpf.{NS}/hv-web/xdp": "replace"}
    applied(env, xdp)
    assert offloads(WORKLOAD_NS[0]) == [False, True]
    assert sorted(p.split("-")[0] for p in pins()) == ["tc", "xdp"]

    # the dataplane block dropped: everything of ours detached and unpinned
    off = env.tmp / "off.herc"
    off.write_text(spec_text(None), encoding="utf-8")
    assert set(plan_changes(env, off).values()) == {"delete"}
    applied(env, off)
    no_changes(env, off)
    assert filters(WG) == [] and [xdp_prog(v) for v in VETHS] == [None, None]
    assert [offloads(w) for w in WORKLOAD_NS] == [[True, False]] * 2  # the veths' defaults back
    assert not Path(pin_root("a", NS)).exists()
    assert [f["options"].get("prog") for f in filters(FOREIGN_DEV)] == [None]  # type: ignore[union-attr]

    # a foreign program where we want ours: refused, nothing touched
    # (the clsact qdisc stays when our filter goes: others' filters may sit on it)
    sh("tc", "-n", NS, "filter", "add", "dev", WG, "ingress", "bpf", "bytecode", CBPF_PASS)
    rc, _, err = env.plan(tc)
    assert rc != 0
    assert f"a program is attached at tc-ingress of {WG} in namespace {NS}" in err
    assert [f["options"].get("prog") for f in filters(WG)] == [None]  # type: ignore[union-attr]


def forwarded(ns: str) -> int:
    """The namespace's IP ForwDatagrams: packets its stack forwarded."""
    head, values = [
        line.split()
        for line in sh("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").splitlines()[:2]
    ]
    return int(values[head.index("ForwDatagrams")])


@pytest.mark.parametrize("fastpath", ["tc", "xdp", None])
def test_ping_through_the_fast_path(node: Node, fastpath: str | None) -> None:
    """Workload to workload on node a, through its network namespace: with a fast path the
    stack forwards nothing (its counter stays), without one it forwards every packet."""
    env = node
    spec = env.tmp / "spec.herc"
    spec.write_text(spec_text(fastpath), encoding="utf-8")
    keys_init(env, spec)
    applied(env, spec)
    web, other = f"{PREFIX}herc-w-web", f"{PREFIX}herc-w-other"
    sh("ip", "netns", "exec", other, "ping", "-c", "1", "-W", "2", "10.77.0.20")  # neighbours
    before = forwarded(NS)
    sh("ip", "netns", "exec", web, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.77.0.21")
    if fastpath is None:
        assert forwarded(NS) >= before + 10  # 5 requests and 5 replies, by the stack
    else:
        assert forwarded(NS) == before  # the stack forwarded none of them: the program did
