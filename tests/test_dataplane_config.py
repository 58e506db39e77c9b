"""The dataplane's compiler side, pure: the generated header, maps.json, the C
text BCC is given, and the byte layouts. Runs everywhere (no kernel, no BCC).

Golden files under tests/golden/dataplane/ hold the backend's exact output for
examples/reference.herc; HERCC_UPDATE_GOLDEN=1 rewrites them.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path

import pytest

from hercc import ir
from hercc.backends import BACKENDS, render_all
from hercc.backends.memo import RenderMemo
from hercc.dataplane.config import DataplaneConfig, header_text, node_config
from hercc.dataplane.layout import (
    FLOW_KEY,
    FLOW_VALUE,
    ROUTE_L3_DEVICE,
    ROUTE_LOCAL,
    route_entry,
)
from hercc.dataplane.maps import NATIVE_XDP_MAX_MTU, node_maps
from hercc.dataplane.program import PROGRAMS, SOURCE_DIR, TC, XDP, program_text
from hercc.flows.records import Direction, sum_cpus
from hercc.pipeline import compile_spec
from hercc.plan.desired import desired_state
from tests.conftest import EXAMPLES, compile_text
from tests.goldentools import match_golden

GOLDEN = Path(__file__).resolve().parent / "golden" / "dataplane"

SPEC = """\
network n {{ range 10.9.0.0/16 }}
node a {{ network n
  endpoint 192.0.2.1:51820 }}
node b {{ network n
  endpoint 192.0.2.2:51820 }}
workload w {{ node a }}
{extra}
"""


def model_of(tmp_path: Path, extra: str) -> ir.IR:
    return compile_text(tmp_path, SPEC.format(extra=extra)).ir


@pytest.fixture(scope="module")
def reference() -> ir.IR:
    return compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir


def test_golden_files_match_byte_for_byte(reference: ir.IR) -> None:
    files = render_all(reference, ["dataplane"])
    del files["ir.json"]
    assert sorted(files) == [
        f"nodes/{n}/dataplane/{f}"
        for n in ("alpha", "beta", "delta", "gamma")
        for f in ("hercules_config.h", "maps.json")
    ]
    match_golden(files, GOLDEN)


def test_no_dataplane_no_files(tmp_path: Path) -> None:
    model = model_of(tmp_path, "")
    assert model.fastpath == "off" and model.netflow is None
    assert BACKENDS["dataplane"](model, model.node("a"), RenderMemo()) == {}


def test_fastpath_off_with_netflow_is_accounting_only(tmp_path: Path) -> None:
    model = model_of(tmp_path, "monitor { netflow { collector 192.0.2.99 } }")
    files = BACKENDS["dataplane"](model, model.node("a"), RenderMemo())
    header = files["nodes/a/dataplane/hercules_config.h"]
    assert "#define FASTPATH_XDP 0\n#define FASTPATH_TC 0\n" in header
    assert "#define ACCOUNTING 1\n" in header
    (space,) = node_maps(model, model.node("a"))["namespaces"].values()
    assert [(i["name"], i["hook"], i["program"]) for i in space["interfaces"]] == [
        ("wg-n", "tc", "fastpath_tc_l3"),
        ("hv-w", "tc", "fastpath_tc_eth"),
    ]


@pytest.mark.parametrize(
    ("mode", "xdp", "tc", "veth_hook"), [("xdp", 1, 1, "xdp"), ("tc", 0, 1, "tc")]
)
def test_fastpath_modes(tmp_path: Path, mode: str, xdp: int, tc: int, veth_hook: str) -> None:
    model = model_of(tmp_path, f"dataplane {{ fastpath {mode} }}")
    maps = node_maps(model, model.node("a"))
    header = header_text(node_config(model, maps))
    assert f"#define FASTPATH_XDP {xdp}\n#define FASTPATH_TC {tc}\n" in header
    assert "#define ACCOUNTING 0\n" in header
    wg, veth, *behind = maps["namespaces"]["herc-n"]["interfaces"]
    assert wg["hook"] == "tc" and ("fallback" in wg) == (mode == "xdp")
    assert veth["hook"] == veth_hook
    if mode == "xdp":  # native XDP, its veth's other end named; TC behind it on the same veth
        assert (veth["xdp_mode"], veth["peer"]) == ("native", "herc-w-w/eth0")
        (tc,) = behind
        assert (tc["name"], tc["hook"], tc["program"]) == ("hv-w", "tc", "fastpath_tc_after_xdp")
        assert tc["behind_xdp"].startswith("forwards what XDP passes")
    else:
        assert behind == [] and "xdp_mode" not in veth


def test_an_mtu_too_big_for_native_xdp_falls_back_to_generic(tmp_path: Path) -> None:
    spec = SPEC.format(extra="dataplane { fastpath xdp }")
    spec = spec.replace("range 10.9.0.0/16", f"range 10.9.0.0/16\n  mtu {NATIVE_XDP_MAX_MTU + 1}")
    model = compile_text(tmp_path, spec).ir
    _, veth, _ = node_maps(model, model.node("a"))["namespaces"]["herc-n"]["interfaces"]
    assert veth["xdp_mode"] == "generic" and "peer" not in veth
    assert veth["fallback"] == "MTU 3507 is above the 3506 native XDP on a veth takes"
    (xdp,) = [r for r in desired_state(model, "a") if r.id == "herc-n/hv-w/xdp"]
    assert dict(xdp.attrs)["mode"] == "generic" and "peer_tx_checksum" not in xdp.attrs
    assert xdp.label == f"fallback to generic XDP: {veth['fallback']}"


def test_routes_of_a_node_with_a_workload(tmp_path: Path) -> None:
    model = model_of(tmp_path, "dataplane { fastpath tc }")
    space = node_maps(model, model.node("a"))["namespaces"]["herc-n"]
    node_address = model.node("a").networks[0].address
    (w,) = model.workloads
    assert space["routes"] == [
        {"prefix": "10.9.0.0/16", "interface": "wg-n", "kind": "wireguard"},
        {"prefix": f"{node_address}/32", "interface": None, "kind": "local"},
        {"prefix": f"{w.address}/32", "interface": "hv-w", "kind": "veth"},
    ]
    assert space["address_to_node"][w.address] == "a"


def test_a_namespace_that_does_not_forward_has_only_local_routes(tmp_path: Path) -> None:
    """b has no workload and relays for nobody: its kernel would not forward either."""
    model = model_of(tmp_path, "dataplane { fastpath tc }")
    (membership,) = model.node("b").networks
    assert not membership.forwarding
    space = node_maps(model, model.node("b"))["namespaces"]["herc-n"]
    assert [r["kind"] for r in space["routes"]] == ["local"]


def test_route_entries_are_a_power_of_two_at_least_64() -> None:
    model_stub = ir.IR((), (), (), ir.Underlay(1, 1, ()), (), (), (), (), "tc", None)
    for routes, entries in ((65, 128), (64, 64), (3, 64), (0, 64), (1000, 1024)):
        maps = {"node": "x", "namespaces": {"ns": {"routes": [{}] * routes}, "ns2": {"routes": []}}}
        assert node_config(model_stub, maps).route_entries == entries, routes


def test_every_define_is_used_by_the_c_and_every_config_macro_is_defined() -> None:
    config = DataplaneConfig("n", "xdp", True, 1024, 64)
    defined = set(re.findall(r"#define (\w+)", header_text(config))) - {"HERCULES_CONFIG_H"}
    c_text = "".join(p.read_text() for p in sorted(SOURCE_DIR.iterdir()))
    used = set(re.findall(r"\b(FASTPATH_XDP|FASTPATH_TC|ACCOUNTING|\w+_MAP_ENTRIES)\b", c_text))
    assert defined == used


@pytest.mark.parametrize("hook", sorted(PROGRAMS))
def test_program_text_expands_local_includes_once(hook: str) -> None:
    program = PROGRAMS[hook]
    header = header_text(DataplaneConfig("n", "tc", True, 1024, 64))

    def read(name: str) -> str:
        return (SOURCE_DIR / name).read_text(encoding="utf-8")

    text = program_text(program, header, read)
    assert '#include "' not in text
    assert text.count("#define HERCULES_PARSE_H") == 1
    assert text.count("#define ROUTE_MAP_ENTRIES 64") == 1
    assert "#include <uapi/linux/bpf.h>" in text
    for entry in program.entries:
        assert re.search(rf"^int {entry}\(", text, re.MULTILINE), entry


def test_programs_and_their_entry_points() -> None:
    assert (TC.source, XDP.source) == ("fastpath_tc.c", "fastpath_xdp.c")
    assert (SOURCE_DIR / TC.source).is_file() and (SOURCE_DIR / XDP.source).is_file()


def u32(n: int) -> bytes:
    return n.to_bytes(4, sys.byteorder)


def test_route_entry_bytes() -> None:
    """Prefix length and values in host order, the address in network order."""
    local = {"prefix": "10.9.0.1/32", "interface": None, "kind": "local"}
    assert route_entry(local, 0, 0) == (
        4,
        u32(32) + bytes([10, 9, 0, 1]),
        u32(0) + u32(ROUTE_LOCAL),
    )
    wg = {"prefix": "fd00::/48", "interface": "wg-n", "kind": "wireguard"}
    assert route_entry(wg, 7, 3) == (
        6,
        u32(48) + ipaddress.IPv6Address("fd00::").packed,
        u32(7) + u32(ROUTE_L3_DEVICE),
    )
    veth = {"prefix": "10.9.1.2/32", "interface": "hv-w", "kind": "veth"}
    assert route_entry(veth, 9, 2)[2] == u32(9) + u32(0)


def test_a_flow_entry_is_decoded_and_its_cpus_summed_without_idle_ones() -> None:
    from hercc.state.dataplane import flow_entry  # pure: bcc is imported only to compile

    key = FLOW_KEY.pack(
        bytes([10, 0, 0, 1]) + bytes(12), bytes([10, 0, 0, 2]) + bytes(12), 1234, 80, 5, 6, 4, 0
    )
    cpus = [
        FLOW_VALUE.pack(2, 120, 500, 900, 0x02),
        FLOW_VALUE.pack(0, 0, 0, 0, 0),
        FLOW_VALUE.pack(3, 300, 400, 800, 0x10),
    ]
    flow_key, per_cpu = flow_entry(key, cpus)
    flow = sum_cpus(per_cpu)
    assert flow is not None and flow_key.direction is Direction.INGRESS
    assert (
        str(flow_key.src),
        str(flow_key.dst),
        flow_key.src_port,
        flow_key.dst_port,
        flow_key.ifindex,
        flow_key.protocol,
    ) == (
        "10.0.0.1",
        "10.0.0.2",
        1234,
        80,
        5,
        6,
    )
    assert (flow.packets, flow.octets, flow.first_ns, flow.last_ns, flow.tcp_flags) == (
        5,
        420,
        400,
        900,
        0x12,
    )


def test_missing_sources_are_a_clear_error(tmp_path: Path) -> None:
    """Raised before BCC is needed: the message names the file and where sources come from."""
    from hercc.state.dataplane import compile_program
    from hercc.state.errors import DataplaneError

    with pytest.raises(DataplaneError, match=r"fastpath_tc\.c.*hercc/dataplane/sources"):
        compile_program(TC, "", source_dir=tmp_path)
