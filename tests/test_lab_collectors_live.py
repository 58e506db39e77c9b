"""A lab with `monitor netflow`: the collector's namespace runs nfcapd, real NetFlow v9 and IPFIX
datagrams sent from inside the nodes' namespaces reach it, and `hercc lab flows` shows exactly
those flows; `lab check` covers it, `lab apply` moves it, `lab down` removes it.

The datagrams are made by hercc.flows (encoders and UdpSender) in a Python started inside a
node's underlay namespace (where a node's exporter sends from): v9 from a public node, IPFIX
from a node behind NAT (through its router's masquerade). Their flows come from ranges the
spec does not use, so records that an exporter of the nodes' own overlay traffic may send are
told apart. Needs root, the lab's tools, nfcapd and nfdump; skipped with the reason otherwise.
Every lab here has a per-run name and is taken down by its fixture, even when a test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hercc.diagnostics import LabError
from hercc.lab import harness, persistent
from hercc.lab.collectors_up import listening
from hercc.lab.daemons import alive
from hercc.lab.persistent.statefile import LabState
from hercc.lab.topology import prefix_for_lab
from tests.labtools import lab, netns_with

REASON = harness.missing_requirements((*harness.TOOLS, "nfcapd", "nfdump"))
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"live lab: {REASON}")
RUN = f"t{os.getpid()}c"

SPEC = """
network demo {
  range  10.42.0.0/16
}

node edge1 {
  network  demo
  endpoint 192.0.2.11
}

node home {
  network demo
  nat
}

monitor {
  netflow {
    collector %s
    protocol  v9
  }
}
"""
# runs inside a node's namespace: the flows of a JSON job, encoded and sent to the collector
SENDER = """
import ipaddress, json, sys, time
from hercc.flows.ipfix import IpfixEncoder
from hercc.flows.netflow_v9 import NetflowV9Encoder
from hercc.flows.packing import ExportPolicy
from hercc.flows.records import Direction, EndReason, FlowKey, FlowRecord, WallClock
from hercc.flows.sender import UdpSender

job = json.load(sys.stdin)
kind = {"v9": NetflowV9Encoder, "ipfix": IpfixEncoder}[job["protocol"]]
encoder = kind(domain_id=job["domain"], clock=WallClock.now(), sampling=1, policy=ExportPolicy())
sender = UdpSender(job["collector"])
now = time.monotonic_ns()
sent = 0
for batch in job["batches"]:
    records = [
        FlowRecord(
            FlowKey(ipaddress.ip_address(s), ipaddress.ip_address(d), sp, dp, proto, 3,
                    Direction.INGRESS),
            packets, octets, now - 4_000_000_000, now - 1_000_000_000, 0, EndReason.IDLE_TIMEOUT,
        )
        for s, d, sp, dp, proto, packets, octets in batch
    ]
    for datagram in encoder.encode(records, now):
        sender.send(datagram.payload)
        sent += 1
print(sent)
"""
Flow = tuple[str, str, int, int, int]  # src, dst, src port, dst port, protocol


def make_flows(seed: int, count: int, base: int) -> dict[Flow, list[int]]:
    """`count` flows from ranges the spec does not use (IPv4 and IPv6, TCP and UDP)."""
    rng = random.Random(seed)
    out: dict[Flow, list[int]] = {}
    for i in range(base, base + count):
        v6 = i % 3 == 0
        src = f"fd99::{i + 1:x}" if v6 else f"172.31.{i // 250}.{i % 250 + 1}"
        dst = "fd99:1::1" if v6 else "172.30.0.1"
        proto = rng.choice((6, 17))
        packets = rng.randrange(1, 100_000)
        out[(src, dst, rng.randrange(1024, 65536), rng.choice((53, 443)), proto)] = [
            packets,
            packets * rng.randrange(40, 1500),
        ]
    return out


def send(ns: str, collector: str, protocol: str, flows: dict[Flow, list[int]]) -> int:
    """Send `flows` in two batches from inside `ns`; the datagrams sent."""
    rows = [[*key, *counts] for key, counts in flows.items()]
    half = len(rows) // 2
    job = {"protocol": protocol, "domain": 7, "collector": collector}
    job["batches"] = [rows[:half], rows[half:]]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def received(data: dict[str, Any], collector: str) -> tuple[dict[Flow, list[int]], list[Any]]:
    """From `lab flows --format json`: packets and bytes per 5-tuple of our ranges, and the
    other records (an exporter's of the overlay)."""
    (one,) = [c for c in data["collectors"] if c["collector"] == collector]
    ours: dict[Flow, list[int]] = defaultdict(lambda: [0, 0])
    others = []
    for rec in one["records"]:
        src = rec.get("src4_addr") or rec["src6_addr"]
        if not src.startswith(("172.31.", "fd99:")):
            others.append(rec)
            continue
        dst = rec.get("dst4_addr") or rec["dst6_addr"]
        row = ours[(src, dst, rec["src_port"], rec["dst_port"], rec["proto"])]
        row[0] += rec["in_packets"]
        row[1] += rec["in_bytes"]
    return dict(ours), others


def flows_json(name: str, *argv: str) -> dict[str, Any]:
    code, out, err = lab("flows", "--name", name, "--format", "json", *argv)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    name = RUN
    spec = tmp_path_factory.mktemp("collector") / "netflow.herc"
    spec.write_text(SPEC % "192.0.2.99:2055")
    persistent.down_lab(name)  # a leftover of a crashed run with this pid
    try:
        code, _, err = lab("up", "--name", name, str(spec))
        assert code == 0, err
        yield name, spec
    finally:
        daemons = []
        with contextlib.suppress(LabError):  # a failed `up` has left no state
            daemons = persistent.load_state(name).daemons
        code, _, err = lab("down", "--name", name)
        assert code == 0, err
        assert netns_with(prefix_for_lab(name)) == []
        # the accounting programs that `monitor netflow` attached: unpinned with the namespaces
        assert list(Path("/sys/fs/bpf/hercules").glob(f"*/{prefix_for_lab(name)}-*")) == []
        assert [d.pid for d in daemons if alive(d)] == []


def test_the_collector_listens_where_the_spec_says(running: tuple[str, Path]) -> None:
    state = persistent.load_state(running[0])
    (c,) = state.collectors
    assert (c.address, c.port, c.ns) == ("192.0.2.99", 2055, f"{state.prefix}-c-192-0-2-99")
    assert c.ns in netns_with(state.prefix) and c.ns in state.namespaces
    assert listening(c)
    (nfcapd,) = [d for d in state.daemons if d.role == "nfcapd"]
    assert alive(nfcapd) and nfcapd.ns == c.ns
    flows = Path(state.directory, "collectors", "192.0.2.99-2055", "flows")
    assert flows.is_dir()


def test_lab_flows_shows_exactly_what_the_nodes_sent(running: tuple[str, Path]) -> None:
    name = running[0]
    state = persistent.load_state(name)
    ns = {h.node: h.ns for h in state.hosts}
    v9, ipfix = make_flows(1, 60, 0), make_flows(2, 40, 1000)
    datagrams = send(ns["edge1"], "192.0.2.99:2055", "v9", v9)
    datagrams += send(ns["home"], "192.0.2.99:2055", "ipfix", ipfix)  # through the NAT router
    assert datagrams >= 4
    data = flows_json(name)
    ours, others = received(data, "192.0.2.99:2055")
    assert ours == v9 | ipfix
    for rec in others:  # only an exporter's records of the overlay's own traffic
        src = rec.get("src4_addr") or rec.get("src6_addr")
        assert ipaddress.ip_address(src) in ipaddress.ip_network("10.42.0.0/16"), rec
    (one,) = data["collectors"]
    assert one["running"] and one["sequence_failures"] == 0 and one["bad_packets"] == 0
    assert one["stats"]["Flows"] == len(one["records"]) == len(v9) + len(ipfix) + len(others)
    # the table: one row per 5-tuple, its packets and bytes
    code, out, err = lab("flows", "--name", name, "--collector", "192.0.2.99")
    assert code == 0, err
    (src, dst, sport, dport, proto), (packets, octets) = next(iter(v9.items()))
    row = [src, str(sport), dst, str(dport), {6: "tcp", 17: "udp"}[proto], str(packets)]
    assert [*row, str(octets)] in [line.split()[:7] for line in out.splitlines()]
    assert "sequence failures 0, bad packets 0" in out.splitlines()[0]
    code, _, err = lab("flows", "--name", name, "--collector", "192.0.2.1")
    assert code == 1 and "no collector 192.0.2.1" in err


def test_lab_check_covers_the_collector(running: tuple[str, Path]) -> None:
    code, out, err = lab("check", "--name", running[0], "--json")
    assert code == 0, out + err
    (c,) = json.loads(out)["collectors"]
    assert c["ok"] and c["listening"] and c["running"] and c["unreachable_from"] == []


def test_lab_apply_moves_the_collector(running: tuple[str, Path]) -> None:
    name, spec = running
    before = persistent.load_state(name)
    moved = spec.with_name("moved.herc")
    moved.write_text(SPEC % "192.0.2.98:9995")
    code, out, err = lab("apply", "--name", name, str(moved))
    assert code == 0, err
    assert "+ netflow collector 192.0.2.98:9995" in out
    assert "- netflow collector 192.0.2.99:2055" in out
    assert "NetFlow collectors -192.0.2.99:2055 +192.0.2.98:9995." in err
    state: LabState = persistent.load_state(name)
    (c,) = state.collectors
    assert c.name == "192.0.2.98:9995" and listening(c)
    assert f"{state.prefix}-c-192-0-2-99" not in netns_with(state.prefix)
    assert [d for d in before.daemons if d.role == "nfcapd" and alive(d)] == []
    flows = make_flows(3, 5, 2000)
    send(state.hosts[0].ns, c.name, "ipfix", flows)
    assert received(flows_json(name), c.name)[0] == flows
    code, out, _ = lab("plan", "--name", name, str(moved))
    assert code == 0 and "No changes" in out
