"""The bpf kind without a kernel: desired attachments, the reader on canned `ip`/`tc`
output, the executor through the recording FakeSystem, and the conflict with a
foreign program (tests/test_dataplane_apply_live.py does it all live)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from hercc import ir
from hercc.dataplane.attach import object_name, parse_object_name, pin_dir
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from hercc.plan.diff import diff
from hercc.plan.node_service import conflicts
from hercc.resources.action import Action
from hercc.resources.model import Resource, state_of
from hercc.resources.naming import Naming
from hercc.state.bpf import Attachment, filters_of, offloads_of, read_bpf, xdp_of
from hercc.state.bpf_pins import PinnedObject
from tests.test_executor import NODE, NS, rig

from .conftest import EXAMPLES

DIGEST = "0123456789abcdef"
# `tc -j filter show dev v0 ingress` with one bpf filter, as iproute2 6.1 prints it
TC_JSON = (
    '[{"protocol":"all","pref":49152,"kind":"bpf","chain":0},{"protocol":"all","pref":49152,'
    '"kind":"bpf","chain":0,"options":{"handle":"0x1","flowid":":1","bpf_name":"herc_x",'
    '"direct-action":true,"not_in_hw":true,"prog":{"id":306,"name":"herc_x",'
    '"tag":"59f4a931744dcdc6","jited":1}}}]'
)
# `ethtool --json -k eth0` (trimmed), with TX checksum offload off and GRO on
ETHTOOL_JSON = (
    '[{"ifname":"eth0","tx-checksumming":{"active":false,"fixed":false,"requested":false},'
    '"generic-receive-offload":{"active":true,"fixed":false,"requested":true}}]'
)
# `ip -j -d link show` (trimmed): lo, and v1 with a generic XDP program
IP_JSON = (
    '[{"ifindex":1,"ifname":"lo","link_type":"loopback"},{"ifindex":2,"ifname":"v1",'
    '"xdp":{"mode":2,"prog":{"id":307,"name":"herc_y","tag":"614b434cd8324ecc","jited":1},'
    '"attached":[{"mode":2,"prog":{"id":307}}]},"link_type":"ether"}]'
)


@pytest.fixture(scope="module")
def reference() -> ir.IR:
    return compile_spec(str(EXAMPLES / "reference.herc")).ir


def test_desired_attachments_of_gamma(reference: ir.IR) -> None:
    st = state_of(desired_state(reference, "gamma", Naming()))
    wg = st["bpf.herc-prod/wg-prod/tc-ingress"]
    xdp = st["bpf.herc-prod/hv-web/xdp"]
    tunnel = st["bpf.herc-prod/gw-gw-eu/tc-ingress"]
    assert wg.attrs["program"] == "fastpath_tc_l3" and xdp.attrs["program"] == "fastpath_xdp"
    assert tunnel.attrs["program"] == "account_tc_l3"  # netflow: accounting only
    assert wg.attrs["digest"] == tunnel.attrs["digest"] != xdp.attrs["digest"]
    assert wg.attrs["flow_entries"] == 65536 and wg.attrs["route_entries"] == 64
    assert wg.forces_new == {
        "program", "digest", "flow_entries", "route_entries", "mode", "peer_tx_checksum", "peer_gro"
    }  # fmt: skip
    assert wg.label is not None and wg.label.startswith("fallback to TC: layer-3 device")
    assert xdp.label is None
    assert (wg.parent, xdp.parent) == ("wireguard.herc-prod/wg-prod", "veth.herc-prod/hv-web")
    # native XDP, with what it needs of the veth's other end; TC behind it on the same veth
    assert {k: xdp.attrs[k] for k in ("mode", "peer_tx_checksum", "peer_gro")} == {
        "mode": "native", "peer_tx_checksum": "off", "peer_gro": "on"
    }  # fmt: skip
    assert "mode" not in wg.attrs and "peer_gro" not in wg.attrs
    behind = st["bpf.herc-prod/hv-web/tc-ingress"]
    assert behind.attrs["program"] == "fastpath_tc_after_xdp"
    assert behind.attrs["digest"] == wg.attrs["digest"]  # the namespace's one TC object
    assert behind.label is not None and behind.label.startswith("TC behind XDP: forwards what")
    content = json.loads(str(xdp.content))
    assert content["hook"] == "xdp" and "#define FASTPATH_XDP 1" in content["header"]
    assert content["peer"] == "herc-w-web/eth0"
    assert {r["kind"] for r in content["routes"]} == {"local", "veth", "wireguard"}


def test_no_dataplane_no_attachments_and_a_changed_header_replaces(reference: ir.IR) -> None:
    import dataclasses

    off = dataclasses.replace(reference, fastpath="off", netflow=None)
    assert not [r for r in desired_state(off, "gamma") if r.kind == "bpf"]
    tc = dataclasses.replace(reference, fastpath="tc", netflow=None)
    before = state_of(desired_state(tc, "gamma"))
    after = state_of(desired_state(dataclasses.replace(tc, netflow=reference.netflow), "gamma"))
    bpf = {c.address: c for c in diff(after, before).changes if c.address.startswith("bpf.")}
    veth = bpf["bpf.herc-prod/hv-web/tc-ingress"]
    assert veth.action is Action.REPLACE
    assert ("flow_entries", None, 65536) in veth.changed
    assert before["bpf.herc-prod/hv-web/tc-ingress"].attrs["flow_entries"] is None


def test_pin_names_round_trip() -> None:
    assert parse_object_name(object_name("tc", DIGEST)) == ("tc", DIGEST)
    assert parse_object_name("xdp-short") is None and parse_object_name("udp-" + DIGEST) is None
    assert str(pin_dir("n", "ns", "tc", DIGEST)) == f"/sys/fs/bpf/hercules/n/ns/tc-{DIGEST}"


def test_reader_parses_tc_and_ip_json() -> None:
    assert filters_of("v0", TC_JSON) == [Attachment("v0", "tc-ingress", 306, 49152, "0x1")]
    assert filters_of("v0", "") == []
    names, xdp = xdp_of(IP_JSON)
    assert names == ["lo", "v1"]
    assert xdp == [Attachment("v1", "xdp", 307, mode="generic")]
    both = '[{"ifname":"v2","xdp":{"attached":[{"mode":1,"prog":{"id":5}},{"mode":2,"prog":{"id":6}}]}}]'
    assert xdp_of(both)[1] == [
        Attachment("v2", "xdp", 5, mode="native"),
        Attachment("v2", "xdp", 6, mode="generic"),
    ]
    assert offloads_of(ETHTOOL_JSON) == {"peer_tx_checksum": "off", "peer_gro": "on"}


class FakeBpf:
    def __init__(self, pinned: dict[str, list[PinnedObject]]) -> None:
        self.pinned_ = pinned
        self.asked: list[str] = []

    def links(self, ns: str) -> str:
        self.asked.append(f"links {ns}")
        return IP_JSON

    def filters(self, ns: str, ifname: str) -> str:
        self.asked.append(f"filters {ns} {ifname}")
        return TC_JSON if ifname == "lo" else "[]"

    def pinned(self, node: str, ns: str) -> list[PinnedObject]:
        return self.pinned_.get(ns, [])

    def netns_ids(self, ns: str) -> str:
        self.asked.append(f"netns ids {ns}")
        return '[{"nsid":0,"name":"wns"}]'

    def features(self, ns: str, ifname: str) -> str:
        self.asked.append(f"features {ns} {ifname}")
        return ETHTOOL_JSON


def test_reader_owns_what_it_pinned_and_nothing_else() -> None:
    xdp = PinnedObject(f"xdp-{DIGEST}", "xdp", DIGEST, {"fastpath_xdp": 307}, {"routes4": 64})
    bpf = FakeBpf({"ns1": [xdp]})
    ours, foreign = read_bpf(NODE, ["ns1"], ["ns1", "ns2"], bpf)
    assert [r.address for r in ours] == ["bpf.ns1/v1/xdp"]
    assert dict(ours[0].attrs) == {
        "program": "fastpath_xdp",
        "digest": DIGEST,
        "flow_entries": None,
        "route_entries": 64,
        "mode": "generic",
    }
    assert foreign == {"ns1/lo/tc-ingress"}  # program 306 is no pin of ours
    assert bpf.asked == ["links ns1", "filters ns1 lo", "filters ns1 v1"]  # ns2: no pins


def test_reader_reads_native_xdp_and_its_veths_other_end() -> None:
    native = IP_JSON.replace('"mode":2', '"mode":1').replace(
        '"ifname":"v1",', '"ifname":"v1","link_index":7,"link_netnsid":0,'
    )

    class Native(FakeBpf):
        def links(self, ns: str) -> str:
            self.asked.append(f"links {ns}")
            return native if ns == "ns1" else '[{"ifindex":7,"ifname":"eth0"}]'

    xdp = PinnedObject(f"xdp-{DIGEST}", "xdp", DIGEST, {"fastpath_xdp": 307}, {"routes4": 64})
    bpf = Native({"ns1": [xdp]})
    (ours,), _ = read_bpf(NODE, ["ns1"], [], bpf)
    assert {k: ours.attrs[k] for k in ("mode", "peer_tx_checksum", "peer_gro")} == {
        "mode": "native", "peer_tx_checksum": "off", "peer_gro": "on"
    }  # fmt: skip
    assert json.loads(str(ours.content)) == {"peer": "wns/eth0"}
    assert bpf.asked[-3:] == ["netns ids ns1", "links wns", "features wns eth0"]


def _bpf(ifname: str, hook: str = "tc-ingress", program: str = "fastpath_tc_eth") -> Resource:
    content = {"hook": "xdp" if hook == "xdp" else "tc", "header": "/* h */", "routes": []}
    return Resource(
        "bpf",
        f"{NS}/{ifname}/{hook}",
        {"program": program, "digest": DIGEST, "flow_entries": None, "route_entries": 64},
        content=json.dumps(content),
    )


def test_executor_shares_one_object_and_detaches_exactly_ours(tmp_path: Path) -> None:
    r = rig(tmp_path)
    web, other = _bpf("hv-web"), _bpf("hv-other")
    directory = pin_dir(NODE, NS, "tc", DIGEST)
    r.executor.create(web)
    r.executor.create(other)
    assert [c for c in r.system.calls if c[0] == "bpf_load"] == [("bpf_load", ("tc", directory))]
    prog = directory / "prog_fastpath_tc_eth"
    assert [c[1] for c in r.system.calls if c[0] == "bpf_attach"] == [
        (NS, "hv-web", "tc", prog),
        (NS, "hv-other", "tc", prog),
    ]
    assert len([c for c in r.system.calls if c[0] == "bpf_fill"]) == 2  # ifindexes of now
    foreign = Attachment("hv-web", "tc-ingress", 9999, 1, "0x2")
    r.system.attached[NS].append(foreign)
    r.system.calls.clear()
    r.executor.delete(web)
    assert r.system.runs() == [
        ("tc", "-n", NS, "filter", "del", "dev", "hv-web", "ingress",
         "protocol", "all", "pref", "49152", "handle", "0x1", "bpf"),
    ]  # fmt: skip
    assert foreign in r.system.attached[NS]
    assert not [c for c in r.system.calls if c[0] == "bpf_unpin"]  # hv-other still uses it
    restore = r.executor.delete(other)
    assert [c for c in r.system.calls if c[0] == "bpf_unpin"] == [("bpf_unpin", (directory,))]
    assert r.system.pinned[NS] == []
    restore()
    assert [c[0] for c in r.system.calls[-2:]] == ["bpf_repin", "bpf_attach"]
    assert [a.ifname for a in r.system.attached[NS]] == ["hv-web", "hv-other"]


def test_executor_xdp_and_a_plan_without_content(tmp_path: Path) -> None:
    r = rig(tmp_path)
    web = _bpf("hv-web", "xdp", "fastpath_xdp")
    r.executor.create(web)
    r.executor.delete(web)
    assert ("ip", "-n", NS, "link", "set", "dev", "hv-web", "xdpgeneric", "off") in r.system.runs()
    with pytest.raises(Exception, match="nothing to load"):
        r.executor.create(Resource("bpf", web.id, web.attrs))


def test_executor_native_xdp_sets_and_restores_the_other_ends_offloads(tmp_path: Path) -> None:
    r = rig(tmp_path)
    plain = _bpf("hv-web", "xdp", "fastpath_xdp")
    content = {**json.loads(str(plain.content)), "peer": "wns/eth0"}
    attrs = {**plain.attrs, "mode": "native", "peer_tx_checksum": "off", "peer_gro": "on"}
    web = Resource("bpf", plain.id, attrs, content=json.dumps(content))
    r.executor.create(web)
    ethtool = ("ip", "netns", "exec", "wns", "ethtool", "-K", "eth0")
    assert r.system.runs() == [(*ethtool, "gro", "on", "tx", "off")]  # before attaching
    assert r.system.calls[-1][0] == "bpf_attach" and r.system.calls[-1][1][-1] == "native"
    r.system.calls.clear()
    live = Resource("bpf", plain.id, attrs, content=json.dumps({"peer": "wns/eth0"}))
    restore = r.executor.delete(live)
    assert r.system.runs() == [
        ("ip", "-n", NS, "link", "set", "dev", "hv-web", "xdpdrv", "off"),
        (*ethtool, "gro", "off", "tx", "on"),  # the veth's defaults back
    ]
    r.system.calls.clear()
    restore()
    assert r.system.runs() == [(*ethtool, "gro", "on", "tx", "off")]
    assert r.system.calls[-1][0] == "bpf_attach"


def test_a_foreign_program_where_we_attach_is_a_conflict(reference: ir.IR) -> None:
    desired = state_of(desired_state(reference, "gamma"))
    plan = diff(desired, {})
    problems = conflicts(plan, frozenset({"herc-prod/hv-web/xdp"}))
    assert problems == [
        "a program is attached at xdp of hv-web in namespace herc-prod and is not Hercules' "
        "(not pinned under its bpffs directory)"
    ]
    assert PurePosixPath(pin_dir("gamma", "herc-prod", "xdp", DIGEST)).name == f"xdp-{DIGEST}"


def test_two_of_ours_on_one_hook_read_as_one_to_replace() -> None:
    tc = PinnedObject(f"tc-{DIGEST}", "tc", DIGEST, {"fastpath_tc_eth": 306}, {"routes4": 64})

    class Twice(FakeBpf):
        def filters(self, ns: str, ifname: str) -> str:
            one = json.loads(TC_JSON)
            return json.dumps([*one, dict(one[1], pref=49151)]) if ifname == "lo" else "[]"

    ours, foreign = read_bpf(NODE, ["ns1"], [], Twice({"ns1": [tc]}))
    assert [(r.id, r.attrs["digest"]) for r in ours] == [("ns1/lo/tc-ingress", "(2 attached)")]
    assert foreign == {"ns1/v1/xdp"}  # program 307 is not ours here
