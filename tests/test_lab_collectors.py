"""The lab's NetFlow collectors without root: where they go, what is refused, how `lab flows`
sums and prints nfdump's records, and how `lab check` reports them.

The live tests (a lab with nfcapd, real datagrams from the nodes) are in
tests/test_lab_collectors_live.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from hercc import ir
from hercc.cli.views.lab import check_json, render_collectors
from hercc.cli.views.lab_flows import flows_json, render_flows, render_table
from hercc.diagnostics import LabError
from hercc.lab import collector_flows as cf
from hercc.lab.collector_flows import CollectorFlows, FlowRow, summarise
from hercc.lab.collectors import Collector, bridge_port, collectors_of
from hercc.lab.collectors_up import ROTATE_SECONDS, collector_changes, nfcapd_argv
from hercc.lab.persistent.probes import CollectorProbe
from hercc.lab.persistent.statefile import LabState, exec_targets
from hercc.lab.topology import topology_of
from tests.conftest import compile_text

SPEC = """
network demo {
  range 10.42.0.0/16
}

node edge1 {
  network  demo
  endpoint 192.0.2.11
}

node home {
  network demo
  nat
}

gateway gw1 {
  address 203.0.113.80
  listen  80
  tunnel  7443
}
"""
NETFLOW = """
monitor {
  netflow {
    collector %s
  }
}
"""


def model_with(tmp_path: Path, collector: str | None) -> ir.IR:
    text = SPEC + (NETFLOW % collector if collector else "")
    return compile_text(tmp_path, text).ir


def test_a_collector_namespace_per_address_on_the_bridge(tmp_path: Path) -> None:
    t = topology_of(model_with(tmp_path, "192.0.2.99:9995"), "hx1")
    c = Collector("192.0.2.99", 9995, "hx1-c-192-0-2-99", "cc0000263")
    assert t.collectors == (c,) and c.name == "192.0.2.99:9995"
    assert t.underlay_namespaces()[-1] == c.ns  # made with the underlay, removed with it
    assert exec_targets(t)["collector:192.0.2.99"] == c.ns
    assert topology_of(model_with(tmp_path, None), "hx1").collectors == ()
    # the default port, and the same bridge port across applies (made from the address)
    assert topology_of(model_with(tmp_path, "192.0.2.99"), "hx1").collectors[0].port == 2055
    assert bridge_port("192.0.2.99") == bridge_port("192.0.2.99") != bridge_port("192.0.2.98")
    argv = nfcapd_argv(c, Path("/d"))
    assert " ".join(argv) == "nfcapd -w /d -b 192.0.2.99 -p 9995 -t 2 -I hercules-lab"


@pytest.mark.parametrize(
    ("collector", "why"),
    [
        ("192.0.2.11:2055", "node edge1's address"),
        ("203.0.113.80:2055", "gateway gw1's address"),
        ("198.19.255.254:2055", "the lab cannot run this spec"),  # the internet client's
        ("100.64.0.9:2055", "NAT ranges"),
        ("[2001:db8::9]:2055", "IPv4 only"),
        ("collector.example.net:2055", "needs an IP address"),
    ],
)
def test_collectors_the_lab_cannot_place(tmp_path: Path, collector: str, why: str) -> None:
    with pytest.raises(LabError, match=why):
        topology_of(model_with(tmp_path, collector), "hx1")


def test_collectors_of_checks_the_addresses_it_is_given(tmp_path: Path) -> None:
    model = model_with(tmp_path, "192.0.2.7:4739")
    assert collectors_of(model, "hq", {"192.0.2.8": "a"})[0].name == "192.0.2.7:4739"
    with pytest.raises(LabError, match="node a's address"):
        collectors_of(model, "hq", {"192.0.2.7": "a"})


def test_apply_adds_and_removes_what_changed() -> None:
    a = Collector("192.0.2.1", 2055, "p-c-192-0-2-1", "cc0000201")
    b = Collector("192.0.2.2", 2055, "p-c-192-0-2-2", "cc0000202")
    b2 = dataclasses.replace(b, port=9995)
    assert collector_changes([a, b], [a, b]) == ([], [])
    assert collector_changes([a], [b]) == ([b], [a])
    assert collector_changes([a, b], [a, b2]) == ([b2], [b])


def test_the_state_file_keeps_the_collectors() -> None:
    c = Collector("192.0.2.99", 2055, "p-c-192-0-2-99", "cc0000263")
    state = LabState("x", "p", "s", "/d", "/k", "now", collectors=[c])
    again = LabState.from_data(json.loads(state.to_json()))
    assert again.collectors == [c]
    older = json.loads(state.to_json())
    del older["collectors"]  # a lab made before collectors: none
    assert LabState.from_data(older).collectors == []


# ---------------------------------------------------------------- lab flows


def record(src: str, dst: str, proto: int, ports: tuple[int, int], n: int, b: int, t: str) -> Any:
    rec: dict[str, Any] = {"type": "FLOW", "proto": proto, "in_packets": n, "in_bytes": b}
    rec["first"] = rec["last"] = t
    rec["src6_addr" if ":" in src else "src4_addr"] = src
    rec["dst6_addr" if ":" in dst else "dst4_addr"] = dst
    if proto in (1, 58):
        rec["icmp_type"], rec["icmp_code"] = ports
    else:
        rec["src_port"], rec["dst_port"] = ports
    return rec


RECORDS = [
    record("10.0.0.1", "10.0.0.2", 6, (40000, 443), 10, 1000, "2026-01-01T10:00:01.000"),
    record("10.0.0.1", "10.0.0.2", 6, (40000, 443), 5, 700, "2026-01-01T10:00:09.500"),
    record("10.0.0.3", "10.0.0.2", 17, (53000, 53), 1, 80, "2026-01-01T10:00:02.000"),
    record("fd00::1", "fd00::2", 58, (128, 0), 2, 208, "2026-01-01T10:00:03.250"),
    {"type": "EXPORTER", "version": 9},  # nfdump's other record types are not flows
]


def test_summarise_sums_each_five_tuple() -> None:
    rows = summarise(RECORDS)
    assert rows == [
        FlowRow(
            "10.0.0.1",
            "10.0.0.2",
            6,
            40000,
            443,
            15,
            1700,
            "2026-01-01T10:00:01.000",
            "2026-01-01T10:00:09.500",
            2,
        ),
        FlowRow("fd00::1", "fd00::2", 58, 128, 0, 2, 208, *["2026-01-01T10:00:03.250"] * 2, 1),
        FlowRow("10.0.0.3", "10.0.0.2", 17, 53000, 53, 1, 80, *["2026-01-01T10:00:02.000"] * 2, 1),
    ]


def flows(running: bool = True) -> CollectorFlows:
    c = Collector("192.0.2.99", 2055, "p-c-192-0-2-99", "cc0000263")
    stats: dict[str, int | str] = {"Flows": 4, "Packets": 18, "Bytes": 1988}
    stats["Sequence failures"] = 1
    return CollectorFlows(c, running, tuple(RECORDS), stats, 2)


def test_the_table_aligns_its_columns() -> None:
    assert render_table(summarise(RECORDS)) == [
        "  src       sport  dst       dport  proto  packets  bytes  first                    last",
        "  10.0.0.1  40000  10.0.0.2    443  tcp         15   1700  2026-01-01T10:00:01.000"
        "  2026-01-01T10:00:09.500",
        "  fd00::1     128  fd00::2       0  icmp6        2    208  2026-01-01T10:00:03.250"
        "  2026-01-01T10:00:03.250",
        "  10.0.0.3  53000  10.0.0.2     53  udp          1     80  2026-01-01T10:00:02.000"
        "  2026-01-01T10:00:02.000",
    ]


def test_lab_flows_text_shows_totals_and_loss() -> None:
    text = render_flows([flows()])
    assert text.splitlines()[0] == (
        "collector 192.0.2.99:2055 (nfcapd running): 4 records, 18 packets, 1988 bytes; "
        "sequence failures 1, bad packets 2"
    )
    assert len(text.splitlines()) == 1 + 1 + 3
    empty = dataclasses.replace(flows(running=False), records=(), stats={})
    assert render_flows([empty]) == (
        "collector 192.0.2.99:2055 (nfcapd NOT RUNNING: only what it wrote before): 0 records, "
        "0 packets, 0 bytes; sequence failures 0, bad packets 2\n  (no records yet)\n"
    )


def test_lab_flows_json_is_nfdumps_records_as_they_are() -> None:
    data = json.loads(flows_json("lab", [flows()]))
    (one,) = data["collectors"]
    assert data["lab"] == "lab" and one["collector"] == "192.0.2.99:2055"
    assert one["records"] == RECORDS
    assert (one["sequence_failures"], one["bad_packets"], one["running"]) == (1, 2, True)
    assert one["stats"]["Packets"] == 18


def test_bad_packets_add_up_over_rotations(tmp_path: Path) -> None:
    log = tmp_path / "nfcapd.log"
    log.write_text(
        "Startup nfcapd.\n"
        "Ident: 'x' Flows: 3, Packets: 33, Bytes: 6000, Sequence Errors: 0, Bad Packets: 2\n"
        "Ident: 'x' Flows: 0, Packets: 0, Bytes: 0, Sequence Errors: 0, Bad Packets: 5\n"
    )
    assert cf.bad_packets(log) == 7
    assert cf.bad_packets(tmp_path / "none") == 0


def test_waits_for_a_file_closed_after_the_slot(tmp_path: Path) -> None:
    now = time.time()
    end = (int(now) // ROTATE_SECONDS + 1) * ROTATE_SECONDS
    current = tmp_path / "nfcapd.current.42"
    current.write_text("")
    os.utime(current, (end + 5, end + 5))  # the open file never counts
    old = tmp_path / "nfcapd.20260101100000"
    old.write_text("")
    os.utime(old, (end - 1, end - 1))  # closed, but before the slot ended
    with pytest.raises(LabError, match="did not rotate"):
        cf.wait_rotation(tmp_path, now, lambda: True, seconds=0.3)
    with pytest.raises(LabError, match="stopped"):
        cf.wait_rotation(tmp_path, now, lambda: False, seconds=0.3)
    os.utime(old, (end, end))
    cf.wait_rotation(tmp_path, now, lambda: False, seconds=0.3)
    assert cf.closed_files(tmp_path) == [old]


def test_flows_of_a_lab_without_or_with_other_collectors() -> None:
    state = LabState("x", "p", "s", "/d", "/k", "now")
    with pytest.raises(LabError, match="no netflow collector"):
        cf.flows_of(state, None, time.time())
    state.collectors = [flows().collector]
    with pytest.raises(LabError, match=r"no collector 192.0.2.1 \(it has 192.0.2.99:2055\)"):
        cf.flows_of(state, "192.0.2.1", time.time())


# ---------------------------------------------------------------- lab check


def test_check_reports_each_collector() -> None:
    c = flows().collector
    good = CollectorProbe(c, True, True, ())
    bad = CollectorProbe(c, True, False, ("home",))
    assert good.ok and not bad.ok
    assert render_collectors([good, bad]) == (
        "netflow collectors:\n"
        "  ok   collector 192.0.2.99:2055: nfcapd running; listening; every node reaches it\n"
        "  FAIL collector 192.0.2.99:2055: nfcapd running; NOT LISTENING; unreachable from home\n"
        "1/2 collectors ok\n"
    )
    assert render_collectors([]) == ""
    data = json.loads(check_json("x", [], [], [bad]))
    assert data["ok"] is False
    assert data["collectors"] == [
        {
            "collector": "192.0.2.99:2055",
            "namespace": c.ns,
            "running": True,
            "listening": False,
            "unreachable_from": ["home"],
            "ok": False,
        }
    ]
