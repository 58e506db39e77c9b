"""The fast path across nodes, live: two lab nodes, a workload on each, pings and a TCP transfer.

A lab (hercc.lab.Lab, a per-run prefix, torn down by the lab even when a
test fails) of two nodes with a workload each, with `dataplane { fastpath
tc }`, with `fastpath xdp`, and without a dataplane (the control). Between
the workloads, that is across both nodes' network namespaces and the
WireGuard tunnel between them: pings over IPv4 and IPv6, and TCP transfers
of TRANSFER bytes over IPv4 and IPv6 checked byte-exact (length and SHA-256
at the receiver), also between two workloads of one node (where native XDP
redirects from veth to veth). The kernel's forwarding counters of both nodes' network
namespaces (/proc/net/snmp ForwDatagrams, /proc/net/snmp6
Ip6OutForwDatagrams) are read before and after: with a fast path the
stacks forward none of it (the programs do: TC on the WireGuard device
towards the workload; towards the tunnel TC on the workload's veth, behind
XDP under `fastpath xdp`), without one they forward every packet.

Needs root, the lab's tools, BCC and BPF; skipped with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hercc.lab import Lab, compile_for_lab, missing_requirements
from tests.test_dataplane_apply_live import _bpf_reason

pytestmark = pytest.mark.live

NET = "dp"
TRANSFER = 8 * 1024 * 1024
PORT = 5201
SEED = b"hercc fast path"
SPEC = """
network dp {
  range  10.66.0.0/16
  range6 fd66:66::/48
}

node n1 {
  network  dp
  endpoint 192.0.2.61
}

node n2 {
  network  dp
  endpoint 192.0.2.62
}

workload w1 {
  node n1
}

workload w2 {
  node n2
}

workload w3 {
  node n1
}
"""
# the receiver: one connection, every byte hashed; prints "<length> <sha256>"
RECEIVER = """
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6)  # and IPv4, mapped (IPV6_V6ONLY off)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(1)
s.settimeout(60)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(60)
h, n = hashlib.sha256(), 0
while chunk := c.recv(1 << 16):
    h.update(chunk)
    n += len(chunk)
print(n, h.hexdigest(), flush=True)
"""
# the sender: TRANSFER bytes made from SEED, the same the test hashes
SENDER = """
import hashlib, socket, sys
host, port, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
block = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(256)) * 8
s = socket.create_connection((host, port), timeout=30)  # IPv4 or IPv6, as `host` is
sent = 0
while sent < size:
    part = block[: size - sent]
    s.sendall(part)
    sent += len(part)
s.close()
"""


def payload_digest() -> str:
    block = b"".join(hashlib.sha256(SEED + bytes([i])).digest() for i in range(256)) * 8
    h, left = hashlib.sha256(), TRANSFER
    while left:
        part = block[:left]
        h.update(part)
        left -= len(part)
    return h.hexdigest()


def spec_text(fastpath: str | None) -> str:
    return SPEC + (f"\ndataplane {{\n  fastpath {fastpath}\n}}\n" if fastpath else "")


@pytest.fixture(scope="module", params=["tc", "xdp", None], ids=["tc", "xdp", "none"])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str | None, Lab]]:
    reason = missing_requirements() or _bpf_reason()
    if reason is not None:
        pytest.skip(reason)
    fastpath: str | None = request.param
    spec = tmp_path_factory.mktemp("fastpath") / "fastpath.herc"
    spec.write_text(spec_text(fastpath), encoding="utf-8")
    compiled, keys = compile_for_lab(str(spec))
    with Lab(compiled.ir, keys=keys, prefix="fp" + secrets.token_hex(2)) as lab:
        yield fastpath, lab


def counters(lab: Lab, node: str) -> dict[str, int]:
    """The forwarding counters of `node`'s network namespace: IPv4 and IPv6 datagrams forwarded."""
    ns = f"{node}@{NET}"
    snmp = lab.exec(ns, ["cat", "/proc/net/snmp"], check=True).stdout.splitlines()
    head, values = next(
        (h.split(), v.split()) for h, v in itertools.pairwise(snmp) if h.startswith("Ip:")
    )
    snmp6 = dict(
        line.split()[:2]
        for line in lab.exec(ns, ["cat", "/proc/net/snmp6"], check=True).stdout.splitlines()
    )
    return {
        "v4": int(values[head.index("ForwDatagrams")]),
        "v6": int(snmp6["Ip6OutForwDatagrams"]),
    }


def all_counters(lab: Lab) -> dict[str, dict[str, int]]:
    return {node: counters(lab, node) for node in ("n1", "n2")}


def test_how_the_fast_path_is_attached(running: tuple[str | None, Lab]) -> None:
    """`fastpath xdp`: native XDP on the workloads' veths, TC behind it, and the workload
    ends' offloads as native XDP on a veth needs them; `tc`: TC only; none: nothing."""
    fastpath, lab = running
    out = lab.exec("n1@dp", ["ip", "-j", "-d", "link", "show", "hv-w1"], check=True).stdout
    (link,) = json.loads(out)
    tc = lab.exec("n1@dp", ["tc", "-j", "filter", "show", "dev", "hv-w1", "ingress"]).stdout
    names = [f["options"]["bpf_name"] for f in json.loads(tc or "[]") if "options" in f]
    features = json.loads(lab.exec("w1", ["ethtool", "--json", "-k", "eth0"], check=True).stdout)
    offloads = [features[0][f]["active"] for f in ("tx-checksumming", "generic-receive-offload")]
    if fastpath == "xdp":
        assert link["xdp"]["mode"] == 1 and link["xdp"]["prog"]["name"] == "fastpath_xdp"  # drv
        assert names == ["fastpath_tc_after_xdp"]
        assert offloads == [False, True]
    else:
        assert "xdp" not in link
        assert names == (["fastpath_tc_eth"] if fastpath == "tc" else [])
        assert offloads == [True, False]  # a veth's defaults


def grown(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, int]:
    return {f"{n}/{v}": after[n][v] - before[n][v] for n in before for v in before[n]}


def addresses(lab: Lab, workload: str) -> tuple[str, str]:
    """The workload's IPv4 and IPv6 addresses (allocated from the node's subnets)."""
    (w,) = [w for w in lab.topology.workloads if w.name == workload]
    assert w.address6 is not None
    return w.address, w.address6


def test_pings_across_nodes(running: tuple[str | None, Lab]) -> None:
    fastpath, lab = running
    w2, w2_6 = addresses(lab, "w2")
    # neighbours resolved first: that exchange is the stack's by design (and the first
    # lab of a run may take a few seconds more to pass its first packets)
    warm = [("w1", w2), ("w1", w2_6), ("w2", addresses(lab, "w1")[0])]
    deadline = time.monotonic() + 20
    while not all(lab.pings(warm)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lab.pings(warm) == [True] * 3
    before = all_counters(lab)
    assert lab.ping("w1", w2, count=5)
    assert lab.ping("w1", w2_6, count=5)
    growth = grown(before, all_counters(lab))
    if fastpath is None:  # the control: each node's stack forwards 5 requests and 5 replies
        assert all(g >= 10 for g in growth.values()), growth
    else:
        assert growth == dict.fromkeys(growth, 0), growth


@pytest.mark.parametrize(
    "src,dst,version",
    [("w1", "w2", 4), ("w3", "w1", 4), ("w1", "w2", 6), ("w3", "w1", 6)],
    ids=["across-v4", "same-node-v4", "across-v6", "same-node-v6"],
)
def test_tcp_transfer_is_byte_exact(
    running: tuple[str | None, Lab], src: str, dst: str, version: int
) -> None:
    """Across nodes, and between two workloads of n1 (native XDP redirects from veth to veth
    there: the checksums the workloads leave to offload must be filled in before)."""
    fastpath, lab = running
    before = all_counters(lab)
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", lab.namespace(dst), sys.executable, "-c", RECEIVER, str(PORT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        to = addresses(lab, dst)[0 if version == 4 else 1]
        argv = [sys.executable, "-c", SENDER, to, str(PORT), str(TRANSFER), SEED.decode()]
        sent = lab.exec(src, argv, timeout=90)
        assert sent.returncode == 0, sent.stderr
        out, err = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(timeout=10)
    assert receiver.returncode == 0, err
    assert out.split() == [str(TRANSFER), payload_digest()]
    growth = grown(before, all_counters(lab))
    segments = TRANSFER // 1500  # at least this many data segments crossed each node
    nodes = ["n1"] if dst == "w1" else ["n1", "n2"]
    if fastpath is None:  # GSO packets count once: at least one for 64 segments
        assert all(growth[f"{n}/v{version}"] >= segments // 64 for n in nodes), growth
    else:
        assert growth == dict.fromkeys(growth, 0), growth
