"""The flow exporter that `hercc apply` runs, end to end, live: real programs, real maps, the
real `hercc flows export` process, nfcapd and tshark as collectors.

Node a of tests/test_dataplane_apply_live.py's spec (fixtures of tests/test_apply_live.py: a
per-run prefix, an underlay namespace with only `lo`) gets `fastpath tc` and `monitor netflow`
with its collector on 127.0.0.1 of the underlay namespace, where nfcapd listens and tshark
captures; the exporter sends from there (`--netns`). Then, for v9 and for IPFIX:

- apply starts one exporter; plan says No changes; a second apply starts no second one;
- a known number of UDP packets and bytes over FLOWS flows goes from workload web to workload
  other through the fast path, in two halves; between them the exporter is stopped by SIGTERM
  (it sends what it holds and deletes it from the map) and apply starts a successor, which
  continues the sequence numbers; a changed idle timeout replaces it, and the successor
  continues them too;
- `flows top --count 1` and `dataplane status` show the traffic;
- dropping `monitor` stops the exporter (it sends the rest; its state file says so);
- nfdump shows exactly the packets and bytes sent per 5-tuple, tshark decodes the same from
  the same datagrams, and neither sees a sequence error.
Skipped, with the reason, without root, WireGuard tools, BCC, BPF, nfcapd, nfdump or tshark.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli.views.plan import NO_CHANGES
from hercc.state.exporter_proc import ExporterFiles, exporter_of
from hercc.sysio import procfs
from tests.test_apply_live import PREFIX, Node, changes, keys_init
from tests.test_dataplane_apply_live import node, spec_text  # noqa: F401  (the fixture)
from tests.test_flow_export_live import (
    daemon,
    free_udp_port,
    logged,
    nfdump_counts,
    run,
    tshark_counts,
)

pytestmark = pytest.mark.live
MISSING = [tool for tool in ("nfcapd", "nfdump", "tshark") if shutil.which(tool) is None]

WEB, OTHER = "10.77.0.20", "10.77.0.21"
FLOWS = 120
PORT0 = 30000  # flow i: WEB:PORT0+i -> OTHER:PORT0+FLOWS+i


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """This thread in namespace `ns`: a socket made here stays there."""
    from pyroute2.netns import popns, pushns  # type: ignore[import-untyped]

    pushns(ns)
    try:
        yield
    finally:
        popns()


def send(web_ns: str, half: int) -> dict[tuple[str, str, int, int, int], list[int]]:
    """Half `half` of the traffic (bounded: FLOWS flows of 1 to 4 packets); what was sent."""
    sent: dict[tuple[str, str, int, int, int], list[int]] = {}
    with inside(web_ns):
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(FLOWS)]
    try:
        for i, s in enumerate(socks):
            s.bind((WEB, PORT0 + i))
            packets, size = (i + half) % 4 + 1, 10 + (i * 37 + half) % 900
            for _ in range(packets):
                s.sendto(b"x" * size, (OTHER, PORT0 + FLOWS + i))
                time.sleep(0.0005)  # gentle on the veths' queues: no loss
            sent[(WEB, OTHER, PORT0 + i, PORT0 + FLOWS + i, 17)] = [packets, packets * (28 + size)]
    finally:
        for s in socks:
            s.close()
    return sent


def add(
    total: dict[tuple[str, str, int, int, int], list[int]],
    more: dict[tuple[str, str, int, int, int], list[int]],
) -> None:
    for k, (p, b) in more.items():
        row = total.setdefault(k, [0, 0])
        row[0] += p
        row[1] += b


def netflow_spec(port: int, protocol: str, extra: str = "") -> str:
    netflow = f"    collector 127.0.0.1:{port}\n    protocol {protocol}\n{extra}"
    return spec_text("tc") + f"\nmonitor {{\n  netflow {{\n{netflow}  }}\n}}\n"


def exporter_pid(env: Node) -> int | None:
    pid = procfs.read_pid_file(ExporterFiles(env.state, "a").pid).get("a")
    if pid is None or exporter_of(procfs.cmdline(pid) or []) is None:
        return None
    return pid


def plan_kinds(env: Node, spec: Path) -> dict[str, str]:
    rc, out, err = env.plan(spec, "--json")
    assert rc == 0, err
    return {a: c for a, c in changes(json.loads(out)).items() if a.startswith("exporter.")}


def applied(env: Node, spec: Path) -> str:
    rc, out, err = env.apply(spec)
    assert rc == 0, err
    return out


def warm_up(web_ns: str) -> None:
    """Neighbours resolved both ways before counting: the first packets would wait for ARP."""
    with inside(web_ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.sendto(b"w", (OTHER, 9))
    time.sleep(0.3)


@pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")
@pytest.mark.parametrize("protocol", ["v9", "ipfix"])
def test_apply_runs_an_exporter_whose_records_are_exact(node: Node, protocol: str) -> None:  # noqa: F811
    env = node
    port, flows_dir, pcap = free_udp_port(), env.tmp / "nfcapd", env.tmp / "export.pcap"
    flows_dir.mkdir()
    spec = env.tmp / "flows.herc"
    spec.write_text(netflow_spec(port, protocol), encoding="utf-8")
    off = env.tmp / "off.herc"
    off.write_text(spec_text("tc"), encoding="utf-8")
    keys_init(env, spec)
    ul, web_ns = env.underlay, f"{PREFIX}herc-w-web"
    in_ul = ["ip", "netns", "exec", ul]
    nfcapd = [*in_ul, *f"nfcapd -w {flows_dir} -b 127.0.0.1 -p {port} -t 60 -I hercc".split()]
    tshark = [*in_ul, "tshark", "-i", "lo", "-f", f"udp port {port}", "-l", "-w", str(pcap)]
    nf_log, ts_log = env.tmp / "nfcapd.log", env.tmp / "tshark.log"
    expected: dict[tuple[str, str, int, int, int], list[int]] = {}
    with (
        daemon(nfcapd, nf_log, logged(nf_log, "Startup"), signal.SIGTERM),
        daemon(
            [*tshark, "-a", "duration:240"], ts_log, logged(ts_log, "Capturing on"), signal.SIGINT
        ),
    ):
        time.sleep(1)  # tshark says "Capturing on" before its capture is live
        assert plan_kinds(env, spec) == {"exporter.a": "create"}
        applied(env, spec)
        first = exporter_pid(env)
        assert first is not None
        assert plan_kinds(env, spec) == {}
        assert NO_CHANGES in applied(env, spec)  # a fresh hercc reads what runs
        assert exporter_pid(env) == first

        warm_up(web_ns)
        add(expected, send(web_ns, 0))
        rc, top, err = env.hercc(
            "flows", "top", "--node", "a", "--state-dir", str(env.state), "--count", "1",
            "--limit", "500",
        )  # fmt: skip
        assert rc == 0, err
        assert f"{WEB}:{PORT0}" in top and f"{OTHER}:{PORT0 + FLOWS}" in top
        assert "\x1b[" not in top  # not a terminal: plain tables
        rc, out, err = env.hercc(
            "dataplane", "status", "--node", "a", "--state-dir", str(env.state), "--format", "json"
        )
        assert rc == 0, err
        (obj,) = json.loads(out)["objects"]
        maps = {m["name"]: m for m in obj["maps"]}
        assert maps["flows"]["in_use"] >= FLOWS
        assert obj["counters"]["redirected"] >= sum(p for p, _ in expected.values())
        devices = {d for p in obj["programs"] for d in p["devices"]}
        assert {"hv-web", "hv-other"} <= devices

        # the exporter stopped from outside: apply starts one again, which continues
        procfs.stop(first, procfs.proc_start_time(first) or 0, timeout=15)
        assert exporter_pid(env) is None
        assert plan_kinds(env, spec) == {"exporter.a": "create"}
        applied(env, spec)
        assert exporter_pid(env) not in (None, first)
        add(expected, send(web_ns, 1))

        # its config changed: replaced, and the successor goes on with the sequence
        changed = env.tmp / "changed.herc"
        changed.write_text(netflow_spec(port, protocol, "    idle_timeout 20s\n"), "utf-8")
        assert plan_kinds(env, changed) == {"exporter.a": "replace"}
        second = exporter_pid(env)
        applied(env, changed)
        assert exporter_pid(env) not in (None, second)
        assert plan_kinds(env, changed) == {}
        add(expected, send(web_ns, 2))

        # monitor dropped: the exporter goes, after sending what it holds
        assert plan_kinds(env, off) == {"exporter.a": "delete"}
        applied(env, off)
        assert exporter_pid(env) is None
        state = json.loads(ExporterFiles(env.state, "a").state.read_text())
        assert state["clean"] is True and state["send_errors"] == {}
        time.sleep(1)  # nfcapd and tshark read their sockets; then they are stopped

    files = sorted(flows_dir.glob("nfcapd.2*"))  # one per minute the run touched
    assert files
    got: dict[tuple[str, str, int, int, int], list[int]] = {}
    for flow_file in files:
        stats = run(["nfdump", "-r", str(flow_file), "-I"])
        assert "Sequence failures: 0" in stats
        if "\nFlows: 0\n" in stats:
            continue  # a minute without records: nfdump -o json says "No matching flows"
        add(got, {k: v[:2] for k, v in nfdump_counts(flow_file).items() if k in expected})
    errors = re.findall(r"Sequence Errors: (\d+), Bad Packets: (\d+)", nf_log.read_text())
    assert errors and all(e == ("0", "0") for e in errors), errors
    assert len(expected) == FLOWS and got == expected
    _, decoded, flagged = tshark_counts(pcap, port)
    assert flagged == []
    assert {k: v for k, v in decoded.items() if k in expected} == expected
