"""The lab and the BPF tools shared by bench/dataplane_pps.py and bench/flows_vs_softflowd.py.

The topology is PLATFORM.md's: a sender namespace, a router namespace and a
receiver namespace, over two veth pairs. The router is a hercc node's network
namespace, with its two workloads' veths named as hercc names them; the
sender and the receiver are those workloads. The router's programs are
hercc's own (dataplane/*.c), compiled with BCC from the header and maps
hercc makes for that node from SPEC, the way apply does.

Load comes from inside the kernel: a generator XDP program run by
BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, `repeat`
frames) on the sender's veth, whose XDP_TX sends each frame to the router.
Frames are recycled with whatever the path wrote into them, so the generator
writes the headers back every time (MAC addresses, TTL and its checksum) and
the flow: source port BASE_PORT + (frame number mod `flows`). A sink XDP
program on the receiver's veth counts and drops them.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway_lab import Lab, LabError
from hercc.state.dataplane import ProgTestRunOpts
from hercc.state.libbpf_maps import libbpf

T = TypeVar("T")

NETWORK = "bench"
SENDER, RECEIVER, NODE = "src", "dst", "r"
SENDER_ADDR, RECEIVER_ADDR = "10.77.1.20", "10.77.1.21"  # in node r's subnet
BASE_PORT, SINK_PORT = 1024, 9  # flows: source ports from BASE_PORT; all to the discard port
FRAME_LEN = 106  # PLATFORM.md's frames: Ethernet, IPv4, UDP and 64 bytes
BPF_F_TEST_XDP_LIVE_FRAMES = 2
XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE = 2, 4
CLONE_NEWNET = 0x40000000
# struct bpf_prog_info (uapi/linux/bpf.h): run_time_ns and run_cnt, kept while stats are on
_PROG_RUN_TIME_OFFSET, _PROG_INFO_SIZE = 192, 256


def spec(fastpath: str, netflow: str | None) -> str:
    """The node, its two workloads, the fast path, and optionally a netflow collector."""
    parts = [
        f"network {NETWORK} {{\n  range 10.77.0.0/16\n}}\n",
        f"node {NODE} {{\n  network  {NETWORK}\n  endpoint 10.255.7.1\n}}\n",
        f"node peer {{\n  network  {NETWORK}\n  endpoint 10.255.7.2:51820\n}}\n",
        f"workload {SENDER} {{\n  node    {NODE}\n  address {SENDER_ADDR}\n}}\n",
        f"workload {RECEIVER} {{\n  node    {NODE}\n  address {RECEIVER_ADDR}\n}}\n",
        f"dataplane {{\n  fastpath {fastpath}\n}}\n",
    ]
    if netflow is not None:
        parts.append(
            "monitor {\n  netflow {\n"
            f"    collector      {netflow}\n    protocol       ipfix\n"
            "    active_timeout 1m\n    idle_timeout   15s\n  }\n}\n"
        )
    return "\n".join(parts)


@dataclass
class HerccProgram:
    """hercc's program for the router namespace: loaded (BCC) and its maps.json part."""

    loaded: Any  # hercc.state.dataplane.LoadedProgram
    namespace: dict[str, Any]  # maps.json's data of the router's namespace
    model: Any  # the IR

    def entry(self, ifname: str) -> tuple[str, str]:
        """(hook, entry point) hercc attaches on `ifname`."""
        iface = next(i for i in self.namespace["interfaces"] if i["name"] == ifname)
        return iface["hook"], iface["program"]


def compile_hercc(workdir: str, fastpath: str, netflow: str | None, hook: str) -> HerccProgram:
    """Compile SPEC to IR, make the router node's header and maps, and load its `hook`
    program: what `hercc apply` loads on that node (state/bpf_load.load)."""
    from hercc.dataplane.config import header_text, node_config
    from hercc.dataplane.maps import node_maps
    from hercc.dataplane.program import PROGRAMS
    from hercc.pipeline import compile_spec
    from hercc.state.dataplane import compile_program

    path = os.path.join(workdir, f"{fastpath}-{'flows' if netflow else 'plain'}.herc")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(spec(fastpath, netflow))
    model = compile_spec(path, use_lock=False).ir
    node = next(n for n in model.nodes if n.name == NODE)
    maps = node_maps(model, node)
    header = header_text(node_config(model, maps))
    (namespace,) = maps["namespaces"].values()
    return HerccProgram(compile_program(PROGRAMS[hook], header), namespace, model)


def veth_names() -> tuple[str, str, str]:
    """The router's veth to each workload, and its WireGuard device, as hercc names them."""
    from hercc.resources.naming import Naming

    naming = Naming()
    return naming.veth_host(SENDER), naming.veth_host(RECEIVER), naming.wg_ifname(NETWORK)


@dataclass
class Topology:
    """Sender -> router -> receiver; static neighbours, so no ARP runs during a load."""

    lab: Lab
    snd: str
    rtr: str
    rcv: str
    r_in: str  # the router's veth to the sender
    r_out: str  # ... and to the receiver
    wg: str  # a TUN device in place of the router's WireGuard one (the range routes there)
    ifindex: dict[tuple[str, str], int]
    mac: dict[tuple[str, str], str]

    @classmethod
    def up(cls, lab: Lab) -> Topology:
        snd, rtr, rcv = lab.netns("snd"), lab.netns("rtr"), lab.netns("rcv")
        r_in, r_out, wg = veth_names()
        lab.veth(snd, "eth0", f"{SENDER_ADDR}/16", rtr, r_in, "10.77.255.1/32")
        lab.veth(rtr, r_out, "10.77.255.2/32", rcv, "eth0", f"{RECEIVER_ADDR}/16")
        lab.run(rtr, ["ip", "tuntap", "add", "dev", wg, "mode", "tun"])
        lab.run(rtr, ["ip", "link", "set", wg, "up"])
        topo = cls(lab, snd, rtr, rcv, r_in, r_out, wg, {}, {})
        for ns, dev in ((snd, "eth0"), (rtr, r_in), (rtr, r_out), (rtr, wg), (rcv, "eth0")):
            topo.ifindex[ns, dev], topo.mac[ns, dev] = _link(lab, ns, dev)
        lab.run(rtr, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        lab.run(rtr, ["ip", "route", "add", f"{SENDER_ADDR}/32", "dev", r_in])
        lab.run(rtr, ["ip", "route", "add", f"{RECEIVER_ADDR}/32", "dev", r_out])
        neighbours = (
            (snd, RECEIVER_ADDR, "eth0", topo.mac[rtr, r_in]),
            (rtr, SENDER_ADDR, r_in, topo.mac[snd, "eth0"]),
            (rtr, RECEIVER_ADDR, r_out, topo.mac[rcv, "eth0"]),
            (rcv, SENDER_ADDR, "eth0", topo.mac[rtr, r_out]),
        )
        for ns, addr, dev, mac in neighbours:
            lab.run(ns, ["ip", "neigh", "replace", addr, "lladdr", mac, "dev", dev,
                         "nud", "permanent"])  # fmt: skip
        # veth takes frames sent with XDP (the generator's XDP_TX, an XDP redirect) only
        # when its peer runs NAPI: an XDP program there, or GRO on.
        for ns, dev in ((rtr, r_in), (rtr, r_out), (rcv, "eth0")):
            lab.run(ns, ["ethtool", "-K", dev, "gro", "on"])
        return topo

    def fill_routes(self, program: HerccProgram) -> None:
        """maps.json's routes into the tries, with this lab's interface indexes."""
        interfaces = {
            self.r_in: (self.ifindex[self.rtr, self.r_in], 2),
            self.r_out: (self.ifindex[self.rtr, self.r_out], 2),
            self.wg: (self.ifindex[self.rtr, self.wg], 3),  # WireGuard over TUN is layer 3
        }
        program.loaded.fill_routes(program.namespace["routes"], interfaces)


def _link(lab: Lab, ns: str, dev: str) -> tuple[int, str]:
    (link,) = json.loads(lab.run(ns, ["ip", "-j", "link", "show", dev]))
    return int(link["ifindex"]), str(link.get("address", ""))  # TUN: none


def frame(src_mac: str, dst_mac: str) -> bytes:
    """A FRAME_LEN-byte UDP frame from the sender to the receiver's SINK_PORT (no checksum)."""
    payload = bytes(FRAME_LEN - 42)
    udp = struct.pack("!HHHH", BASE_PORT, SINK_PORT, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                               ipaddress.ip_address(SENDER_ADDR).packed,
                               ipaddress.ip_address(RECEIVER_ADDR).packed))  # fmt: skip
    struct.pack_into("!H", ip, 10, ip_checksum(bytes(ip)))
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    return eth + b"\x08\x00" + bytes(ip) + udp


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _c_bytes(data: bytes) -> str:
    return "{" + ", ".join(str(b) for b in data) + "}"


GENERATOR_C = """
#include <uapi/linux/bpf.h>

BPF_PERCPU_ARRAY(frames, u64, 1);
BPF_ARRAY(flows, u32, 1);  /* how many flows the frames cycle through */

int generate(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    unsigned char head[14] = HEAD;
    u32 zero = 0;
    u64 *n = frames.lookup(&zero);
    u32 *count = flows.lookup(&zero);
    u8 *p = data;

    if (data + 42 > end || !n || !count || !*count)
        return XDP_ABORTED;
    __builtin_memcpy(p, head, 14);
    p[22] = 64;                                  /* TTL */
    *(u16 *)(p + 24) = CHECK;                    /* its header checksum, as first made */
    *(u16 *)(p + 34) = bpf_htons(BASE_PORT + (u16)(*n % *count));
    *n += 1;
    return XDP_TX;
}
"""

SINK_C = """
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>

BPF_PERCPU_ARRAY(received, u64, 1);

int sink(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = (void *)(ip + 1);
    u32 zero = 0;
    u64 *n;

    if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    if (ip->protocol != IPPROTO_UDP || udp->dest != bpf_htons(SINK_PORT))
        return XDP_PASS;
    n = received.lookup(&zero);
    if (n)
        *n += 1;
    return XDP_DROP;
}
"""


class Tool:
    """A BCC-compiled XDP program of the bench's own (the generator, the sink)."""

    def __init__(self, text: str, entry: str) -> None:
        import bcc  # type: ignore[import-not-found]

        self.bpf = bcc.BPF(text=text.encode())
        self.fd = int(self.bpf.load_func(entry.encode(), bcc.BPF.XDP).fd)

    def total(self, table: str) -> int:
        t = self.bpf.get_table(table.encode())
        return int(t.sum(t.Key(0)).value)

    def set(self, table: str, value: int) -> None:
        t = self.bpf.get_table(table.encode())
        t[t.Key(0)] = t.Leaf(value)

    def close(self) -> None:
        self.bpf.cleanup()


def generator(topo: Topology) -> tuple[Tool, bytes]:
    """The generator program, and the frame it starts from."""
    data = frame(topo.mac[topo.snd, "eth0"], topo.mac[topo.rtr, topo.r_in])
    check = struct.unpack_from("=H", data, 24)[0]  # kept in network order, stored as is
    text = GENERATOR_C.replace("HEAD", _c_bytes(data[:14])).replace("CHECK", str(check))
    return Tool(text.replace("BASE_PORT", str(BASE_PORT)), "generate"), data


def sink() -> Tool:
    return Tool(SINK_C.replace("SINK_PORT", str(SINK_PORT)), "sink")


def send_live(fd: int, data: bytes, ifindex: int, count: int) -> None:
    """Run the generator `count` times in live-frames mode, as if `data` arrived on `ifindex`
    (an interface of the calling thread's network namespace)."""
    ctx = struct.pack("=6I", 0, len(data), 0, ifindex, 0, 0)  # struct xdp_md
    data_in = ctypes.create_string_buffer(data, len(data))
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx))
    opts = ProgTestRunOpts(
        sz=ctypes.sizeof(ProgTestRunOpts),
        data_in=ctypes.cast(data_in, ctypes.c_void_p),
        data_size_in=len(data),
        ctx_in=ctypes.cast(ctx_in, ctypes.c_void_p),
        ctx_size_in=len(ctx),
        repeat=count,
        flags=BPF_F_TEST_XDP_LIVE_FRAMES,
    )
    rc = libbpf().bpf_prog_test_run_opts(fd, ctypes.byref(opts))
    if rc != 0:
        raise LabError(f"BPF_PROG_TEST_RUN (live frames): {os.strerror(-rc)}")


def in_netns(ns: str, work: Callable[[], T], cpu: int | None = None) -> T:
    """`work()` in a thread that has joined network namespace `ns` (and, given `cpu`, runs
    only there); the process's other threads stay where they are."""
    out: list[T] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise LabError(f"setns {ns}: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})  # 0: this thread
            out.append(work())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def thread_cpu_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_THREAD_CPUTIME_ID)


def enable_stats() -> int:
    """BPF_ENABLE_STATS: programs count their runs and run time until the fd is closed."""
    fd = int(libbpf().bpf_enable_stats(0))  # BPF_STATS_RUN_TIME
    if fd < 0:
        raise LabError(f"BPF_ENABLE_STATS: {os.strerror(ctypes.get_errno())}")
    return fd


def run_stats(fd: int) -> tuple[int, int]:
    """A program's (run time ns, runs) so far: counted only while stats are enabled."""
    buf = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    size = ctypes.c_uint32(_PROG_INFO_SIZE)
    if libbpf().bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size)) != 0:
        raise LabError(f"program info: {os.strerror(ctypes.get_errno())}")
    ns, runs = struct.unpack_from("=QQ", buf.raw, _PROG_RUN_TIME_OFFSET)
    return int(ns), int(runs)


def _netlink(ns: str, work: Callable[[Any], None]) -> None:
    """`work(ipr)` with a netlink socket made inside `ns` (by a thread that joined it)."""

    def body() -> None:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        with IPRoute() as ipr:
            work(ipr)

    in_netns(ns, body)


def attach_xdp(ns: str, ifindex: int, fd: int, mode: int) -> None:
    attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", mode)]
    _netlink(ns, lambda ipr: ipr.link("set", index=ifindex, xdp={"attrs": attrs}))


def detach_xdp(ns: str, ifindex: int, mode: int) -> None:
    attrs = [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", mode)]
    _netlink(ns, lambda ipr: ipr.link("set", index=ifindex, xdp={"attrs": attrs}))


def attach_tc(ns: str, ifindex: int, fd: int, name: str) -> None:
    """A direct-action filter on the ingress, as hercc's bpf_pins.attach_tc makes it."""

    def work(ipr: Any) -> None:
        ipr.tc("add", "clsact", ifindex)
        ipr.tc("add-filter", "bpf", ifindex, ":1", fd=fd, name=name, parent=0xFFFFFFF2,
               classid=1, direct_action=True)  # fmt: skip

    _netlink(ns, work)


def detach_tc(ns: str, ifindex: int) -> None:
    _netlink(ns, lambda ipr: ipr.tc("del", "clsact", ifindex))
