"""The eBPF programs under dataplane/, run through BPF_PROG_TEST_RUN: a crafted
packet in, the verdict and the rewritten packet out, and what the maps counted.

Needs root, BCC (python3-bpfcc) with kernel headers, and a kernel with BPF;
skipped with the reason otherwise. Each program is compiled once per module
(about 0.5 s and 200 MB each). The programs run inside a network namespace
made here, with two veths (a0 in, b0 out), a TUN device (t0, layer 3), the
devices a build of examples/reference.herc names on node gamma (hv-web,
wg-prod), forwarding on, and permanent neighbours: bpf_fib_lookup (XDP) and
bpf_check_mtu (TC) look at real devices.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from hercc.dataplane.config import DataplaneConfig, header_text
from hercc.dataplane.layout import (
    FLOW_KEY,
    FLOW_VALUE,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    XDP_PASS,
    XDP_REDIRECT,
)
from hercc.dataplane.maps import node_maps
from hercc.dataplane.program import TC, XDP, Program
from hercc.flows.records import FlowCounters, FlowKey, merge
from hercc.pipeline import compile_spec
from hercc.state.dataplane import LoadedProgram, ProgramRun, compile_program
from hercc.state.errors import BccUnavailable
from tests.conftest import EXAMPLES
from tests.packets import (
    ETH_P_IP,
    ETH_P_IPV6,
    TCP,
    UDP,
    arp_request,
    checksum,
    ether,
    ipv4,
    ipv6,
    tcp,
    udp,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="BPF programs need root")

NS = f"hercbpf-{os.getpid()}"
B0_MAC = "02:00:00:00:0b:00"
NEIGH_MAC = "02:00:00:00:0b:02"
ROUTES: list[dict[str, str | None]] = [
    {"prefix": "10.77.1.1/32", "interface": None, "kind": "local"},
    {"prefix": "10.77.2.0/24", "interface": "b0", "kind": "veth"},
    {"prefix": "10.77.9.0/24", "interface": "t0", "kind": "wireguard"},
    {"prefix": "fd77:1::1/128", "interface": None, "kind": "local"},
    {"prefix": "fd77:2::/64", "interface": "b0", "kind": "veth"},
]
SETUP = f"""\
link add a0 type veth peer name a1
link add b0 address {B0_MAC} type veth peer name b1
tuntap add dev t0 mode tun
link add hv-web type veth peer name hv-web-peer
tuntap add dev wg-prod mode tun
link set hv-web up
link set hv-web-peer up
link set wg-prod up
link set a0 up
link set a1 up
link set b0 up
link set b1 up
link set t0 up
address add 10.77.1.1/24 dev a0
address add 10.77.2.1/24 dev b0
address add 10.77.9.1/24 dev t0
address add fd77:1::1/64 dev a0 nodad
address add fd77:2::1/64 dev b0 nodad
neighbour add 10.77.2.2 lladdr {NEIGH_MAC} dev b0 nud permanent
neighbour add fd77:2::2 lladdr {NEIGH_MAC} dev b0 nud permanent
"""


def ip(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["ip", *argv], input=stdin, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def netns() -> Iterator[dict[str, tuple[int, int]]]:
    """The namespace; yields its interfaces as name -> (ifindex, layer)."""
    ip("netns", "add", NS)
    try:
        ip("-n", NS, "-batch", "-", stdin=SETUP)
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            subprocess.run(
                ["ip", "netns", "exec", NS, "sysctl", "-qw", key], check=True, timeout=10
            )
        links = json.loads(ip("-n", NS, "-j", "link", "show"))
        yield {
            link["ifname"]: (link["ifindex"], 3 if link["link_type"] == "none" else 2)
            for link in links
        }
    finally:
        ip("netns", "delete", NS)


@contextlib.contextmanager
def inside() -> Iterator[None]:
    """Run in NS (this thread only): test runs see its devices, routes and neighbours."""
    from pyroute2.netns import popns, pushns  # type: ignore[import-untyped]

    pushns(NS)
    try:
        yield
    finally:
        popns()


def loaded(
    program: Program, config: DataplaneConfig, interfaces: dict[str, tuple[int, int]]
) -> LoadedProgram:
    try:
        prog = compile_program(program, header_text(config))
    except BccUnavailable as exc:
        pytest.skip(str(exc))
    prog.fill_routes(ROUTES, interfaces)
    return prog


CONFIG = DataplaneConfig(
    node="test", fastpath="xdp", accounting=True, flow_entries=1024, route_entries=64
)


@pytest.fixture(scope="module")
def tc(netns: dict[str, tuple[int, int]]) -> Iterator[LoadedProgram]:
    prog = loaded(TC, CONFIG, netns)
    yield prog
    prog.close()


@pytest.fixture(scope="module")
def xdp(netns: dict[str, tuple[int, int]]) -> Iterator[LoadedProgram]:
    prog = loaded(XDP, CONFIG, netns)
    yield prog
    prog.close()


def run_tc(prog: LoadedProgram, frame: bytes, entry: str = "fastpath_tc_eth") -> ProgramRun:
    with inside():
        return prog.test_run(entry, frame)


def run_xdp(prog: LoadedProgram, frame: bytes, netns: dict[str, tuple[int, int]]) -> ProgramRun:
    with inside():
        return prog.test_run("fastpath_xdp", frame, ingress_ifindex=netns["a0"][0])


def v4_frame(dst: str, *, ttl: int = 64, frag: int = 0, options: bytes = b"") -> bytes:
    packet = ipv4("10.77.1.2", dst, TCP, tcp(40000, 443), ttl=ttl, frag=frag, options=options)
    return ether(ETH_P_IP, packet)


def v6_frame(dst: str, *, hop_limit: int = 64) -> bytes:
    return ether(ETH_P_IPV6, ipv6("fd77:1::2", dst, UDP, udp(5353, 53, b"q"), hop_limit=hop_limit))


def assert_forwarded_v4(frame: bytes, out: bytes) -> None:
    """TTL one less, a header checksum that still verifies, everything else as it was."""
    ip_in, ip_out = frame[14:34], out[14:34]
    assert ip_out[8] == ip_in[8] - 1
    assert checksum(ip_out) == 0
    assert ip_out[:8] == ip_in[:8] and ip_out[12:] == ip_in[12:]
    assert out[34:] == frame[34:]


# Forwarding


def test_tc_forwards_ipv4_with_ttl_and_checksum(tc: LoadedProgram) -> None:
    frame = v4_frame("10.77.2.2")
    run = run_tc(tc, frame)
    assert run.verdict == TC_ACT_REDIRECT
    assert_forwarded_v4(frame, run.packet)
    assert run.packet[:12] == frame[:12]  # bpf_redirect_neigh writes L2 after the program


def test_xdp_forwards_ipv4_with_the_neighbours_macs(
    xdp: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    frame = v4_frame("10.77.2.2")
    run = run_xdp(xdp, frame, netns)
    assert run.verdict == XDP_REDIRECT
    assert_forwarded_v4(frame, run.packet)
    assert run.packet[:6] == bytes.fromhex(NEIGH_MAC.replace(":", ""))
    assert run.packet[6:12] == bytes.fromhex(B0_MAC.replace(":", ""))


def test_checksum_carry_wraps(tc: LoadedProgram) -> None:
    """Every TTL from 2 to 255 (the checksum's high byte passes 0xff): the incremental
    update always gives a header whose checksum verifies."""
    for ttl in range(2, 256):
        frame = v4_frame("10.77.2.2", ttl=ttl)
        run = run_tc(tc, frame)
        assert run.verdict == TC_ACT_REDIRECT
        assert checksum(run.packet[14:34]) == 0, ttl


def test_tc_redirects_to_a_layer3_device_and_xdp_leaves_it_to_the_stack(
    tc: LoadedProgram, xdp: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    frame = v4_frame("10.77.9.5")
    run = run_tc(tc, frame)
    assert run.verdict == TC_ACT_REDIRECT
    assert_forwarded_v4(frame, run.packet)
    run = run_xdp(xdp, frame, netns)
    assert (run.verdict, run.packet) == (XDP_PASS, frame)


def test_ipv6_forwarded_with_hop_limit_decremented(
    tc: LoadedProgram, xdp: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    frame = v6_frame("fd77:2::2")
    for run, verdict in (
        (run_tc(tc, frame), TC_ACT_REDIRECT),
        (run_xdp(xdp, frame, netns), XDP_REDIRECT),
    ):
        assert run.verdict == verdict
        assert run.packet[14 + 7] == 63
        assert run.packet[14:21] == frame[14:21] and run.packet[22:] == frame[22:]
    assert run.packet[:6] == bytes.fromhex(NEIGH_MAC.replace(":", ""))


# To the stack, unchanged


TO_STACK = {
    "local destination": v4_frame("10.77.1.1"),
    "local IPv6 destination": v6_frame("fd77:1::1"),
    "no route": v4_frame("192.0.2.1"),
    "no IPv6 route": v6_frame("2001:db8::1"),
    "TTL 1 (the stack sends time exceeded)": v4_frame("10.77.2.2", ttl=1),
    "hop limit 1": v6_frame("fd77:2::2", hop_limit=1),
    "TTL 0": v4_frame("10.77.2.2", ttl=0),
    "ARP": arp_request("10.77.1.2", "10.77.1.1"),
    "first fragment (MF)": v4_frame("10.77.2.2", frag=0x2000),
    "later fragment (offset)": v4_frame("10.77.2.2", frag=0x0010),
    "IPv4 options": v4_frame("10.77.2.2", options=b"\x01\x01\x01\x00"),
    "IPv6 fragment header": ether(ETH_P_IPV6, ipv6("fd77:1::2", "fd77:2::2", 44, bytes(16))),
    "neighbour solicitation": ether(
        ETH_P_IPV6, ipv6("fd77:1::2", "fd77:2::2", 58, bytes([135, 0]) + bytes(22), hop_limit=255)
    ),
    "multicast": v4_frame("224.0.0.5"),
    "IHL past the end": v4_frame("10.77.2.2", options=b"\x01" * 40)[: 14 + 30],
    "IP length past the end": v4_frame("10.77.2.2")[: 14 + 2]
    + b"\x01\x00"
    + v4_frame("10.77.2.2")[18:],
    "IHL below 5": ether(ETH_P_IP, bytes([0x44]) + v4_frame("10.77.2.2")[15:]),
}


@pytest.mark.parametrize("case", sorted(TO_STACK))
def test_goes_to_the_stack_unchanged(
    case: str, tc: LoadedProgram, xdp: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    frame = TO_STACK[case]
    run = run_tc(tc, frame)
    assert (run.verdict, run.packet) == (TC_ACT_OK, frame)
    run = run_xdp(xdp, frame, netns)
    assert (run.verdict, run.packet) == (XDP_PASS, frame)


# The kernel's skb test run refuses these (an skb reaches TC only with its
# IP header pulled in); XDP sees frames as they come.
TRUNCATED = {
    "Ethernet header only": ether(ETH_P_IP, b""),
    "truncated IPv4 header": v4_frame("10.77.2.2")[: 14 + 12],
    "truncated IPv6 header": v6_frame("fd77:2::2")[: 14 + 30],
    "truncated TCP header": v4_frame("10.77.2.2")[: 14 + 20 + 10],
}


@pytest.mark.parametrize("case", sorted(TRUNCATED))
def test_xdp_passes_truncated_frames_unchanged(
    case: str, xdp: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    frame = TRUNCATED[case]
    run = run_xdp(xdp, frame, netns)
    assert (run.verdict, run.packet) == (XDP_PASS, frame)


# Accounting


def flow_of(prog: LoadedProgram, sport: int) -> list[tuple[FlowKey, FlowCounters]]:
    """The flows from source port `sport`, summed over CPUs as the exporter sums them."""
    return [(k, c) for k, c in merge(prog.flows()).items() if k.src_port == sport]


@pytest.mark.parametrize("hook", ["tc", "xdp"])
def test_accounting_counts_packets_bytes_and_flags(
    hook: str, tc: LoadedProgram, xdp: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    prog = tc if hook == "tc" else xdp
    sport = 41000 if hook == "tc" else 42000
    flags = [0x02, 0x10, 0x18, 0x18, 0x11]  # SYN, ACK, PSH|ACK twice, FIN|ACK
    before = prog.counters()
    lengths = []
    for n, flag in enumerate(flags):
        packet = ipv4("10.77.1.2", "10.77.2.2", TCP, tcp(sport, 443, flag, b"x" * n))
        lengths.append(len(packet))
        frame = ether(ETH_P_IP, packet)
        run = run_tc(prog, frame) if hook == "tc" else run_xdp(prog, frame, netns)
        assert run.verdict in (TC_ACT_REDIRECT, XDP_REDIRECT)
    after = prog.counters()
    ((key, flow),) = flow_of(prog, sport)
    assert flow.packets == len(flags)
    assert flow.octets == sum(lengths)
    assert flow.tcp_flags == 0x1B
    assert (str(key.src), str(key.dst), key.dst_port, key.protocol, key.ipv6) == (
        "10.77.1.2",
        "10.77.2.2",
        443,
        TCP,
        False,
    )
    assert key.ifindex == (1 if hook == "tc" else netns["a0"][0])
    assert 0 < flow.first_ns <= flow.last_ns
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {
        "redirected": len(flags),
        "passed": 0,
        "dropped": 0,
        "flows_created": 1,
        "flows_failed": 0,
        "flows_deleted": 0,
    }


def test_a_gso_packet_counts_its_wire_segments(tc: LoadedProgram) -> None:
    """3 segments of 1000 payload bytes: 3 packets, and each segment's own 40 header bytes.

    It is bigger than b0's MTU, and still forwarded: GSO cuts it into
    segments that fit when it is sent.
    """
    packet = ipv4("10.77.1.2", "10.77.2.2", TCP, tcp(45000, 443, 0x18, b"y" * 3000))
    with inside():
        run = tc.test_run("fastpath_tc_eth", ether(ETH_P_IP, packet), gso_segs=3, gso_size=1000)
    assert run.verdict == TC_ACT_REDIRECT
    ((_, flow),) = flow_of(tc, 45000)
    assert (flow.packets, flow.octets) == (3, len(packet) + 2 * 40)


def test_repeated_runs_are_each_accounted(tc: LoadedProgram) -> None:
    """The kernel reruns the same packet: a local one, as a forwarded one would lose TTL."""
    packet = ipv4("10.77.1.2", "10.77.1.1", UDP, udp(46000, 53, b"r"))
    before = tc.counters()["passed"]
    with inside():
        run = tc.test_run("fastpath_tc_eth", ether(ETH_P_IP, packet), repeat=1000)
    assert run.verdict == TC_ACT_OK and run.duration_ns > 0
    ((_, flow),) = flow_of(tc, 46000)
    assert (flow.packets, flow.octets) == (1000, 1000 * len(packet))
    assert tc.counters()["passed"] - before == 1000


def test_passed_packets_are_counted_and_accounted(tc: LoadedProgram) -> None:
    before = tc.counters()
    frame = ether(ETH_P_IP, ipv4("10.77.1.2", "10.77.1.1", UDP, udp(43000, 53, b"abc")))
    for _ in range(3):
        assert run_tc(tc, frame).verdict == TC_ACT_OK
    assert run_tc(tc, arp_request("10.77.1.2", "10.77.1.1")).verdict == TC_ACT_OK
    after = tc.counters()
    assert after["passed"] - before["passed"] == 4
    assert after["redirected"] == before["redirected"]
    ((_, flow),) = flow_of(tc, 43000)
    assert (flow.packets, flow.octets, flow.tcp_flags) == (3, 3 * (len(frame) - 14), 0)


def test_ipv6_flow_key(tc: LoadedProgram) -> None:
    frame = ether(ETH_P_IPV6, ipv6("fd77:1::2", "fd77:2::2", UDP, udp(44000, 53, b"q")))
    run_tc(tc, frame)
    ((key, flow),) = flow_of(tc, 44000)
    assert (key.ipv6, str(key.src), str(key.dst), flow.octets) == (
        True,
        "fd77:1::2",
        "fd77:2::2",
        40 + 9,
    )


def test_map_layouts_match_the_c(tc: LoadedProgram) -> None:
    """hercc.dataplane.layout's structs are the sizes BCC gives the C structs."""
    flows = tc.table("flows")
    assert ctypes.sizeof(flows.Key) == FLOW_KEY.size
    assert ctypes.sizeof(flows.sLeaf) == FLOW_VALUE.size


def test_accounting_only_programs_pass_everything(netns: dict[str, tuple[int, int]]) -> None:
    """fastpath off with netflow on: the TC program counts, and forwards nothing."""
    config = DataplaneConfig(
        node="test", fastpath="off", accounting=True, flow_entries=64, route_entries=64
    )
    prog = loaded(TC, config, netns)
    try:
        frame = v4_frame("10.77.2.2")
        run = run_tc(prog, frame)
        assert (run.verdict, run.packet) == (TC_ACT_OK, frame)
        ((key, flow),) = merge(prog.flows()).items()
        assert (flow.packets, str(key.dst)) == (1, "10.77.2.2")
        assert prog.counters()["passed"] == 1
    finally:
        prog.close()


def test_routes_of_a_real_build_drive_the_program(
    tc: LoadedProgram, netns: dict[str, tuple[int, int]]
) -> None:
    """gamma's maps.json routes of examples/reference.herc, with its device names made here."""
    model = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir
    space = node_maps(model, model.node("gamma"))["namespaces"]["herc-prod"]
    tc.fill_routes(space["routes"], {n: netns[n] for n in ("wg-prod", "hv-web")})
    (web,) = [w for w in model.workloads if w.name == "web"]
    (gamma,) = model.node("gamma").networks
    cases = {
        web.address: TC_ACT_REDIRECT,  # to its veth
        "10.20.200.1": TC_ACT_REDIRECT,  # elsewhere in the overlay: to wg-prod
        gamma.address: TC_ACT_OK,  # the node itself
        "100.127.0.3": TC_ACT_OK,  # its address on a gateway tunnel: nftables decides
    }
    for dst, verdict in cases.items():
        assert dst is not None
        frame = ether(ETH_P_IP, ipv4("10.20.0.1", dst, UDP, udp(47000, 53, b"q")))
        assert run_tc(tc, frame).verdict == verdict, dst
