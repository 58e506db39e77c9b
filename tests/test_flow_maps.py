"""The pinned flow and counter maps read from outside the loader (hercc.state.flow_maps).

A TC program with accounting and a 64-flow map is compiled, pinned under a
node name of this run, and run on crafted UDP frames (BPF_PROG_TEST_RUN).
The maps opened by path must hold what the loader's own BCC tables hold,
batch and key by key alike; `take` deletes with the final counters and
counts the deletion; flows beyond the map's size show as evictions.
Skipped, with the reason, without root, BCC or BPF.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.dataplane.attach import node_root, pin_dir
from hercc.dataplane.config import DataplaneConfig, header_text
from hercc.dataplane.layout import TC_ACT_OK
from hercc.dataplane.program import TC
from hercc.flows.records import FlowKey, merge
from hercc.state.bpf_pins import pin_loaded
from hercc.state.dataplane import LoadedProgram, compile_program
from hercc.state.errors import BccUnavailable
from hercc.state.flow_maps import node_flow_maps
from tests.packets import ETH_P_IP, UDP, ether, ipv4, udp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="BPF programs need root")

NODE = f"hfm{os.getpid()}"
ENTRIES = 64
CONFIG = DataplaneConfig(
    node=NODE, fastpath="off", accounting=True, flow_entries=ENTRIES, route_entries=64
)


@pytest.fixture
def prog() -> Iterator[LoadedProgram]:
    try:
        loaded = compile_program(TC, header_text(CONFIG))
    except BccUnavailable as exc:
        pytest.skip(str(exc))
    directory = Path(pin_dir(NODE, "ns0", "tc", "0123456789abcdef"))
    try:
        pin_loaded(loaded, directory)
        yield loaded
    finally:
        loaded.close()
        shutil.rmtree(node_root(NODE), ignore_errors=True)  # bpffs: unlinks the pins


def send(prog: LoadedProgram, sport: int, payload: int, times: int = 1) -> int:
    """`times` UDP packets from port `sport`; their L3 bytes."""
    packet = ipv4("10.9.0.1", "10.9.0.2", UDP, udp(sport, 53, b"x" * payload))
    for _ in range(times):
        assert prog.test_run("fastpath_tc_eth", ether(ETH_P_IP, packet)).verdict == TC_ACT_OK
    return len(packet) * times


def test_the_pinned_maps_hold_what_the_loader_sees(prog: LoadedProgram) -> None:
    sizes = {sport: send(prog, sport, sport % 50, times=sport % 3 + 1) for sport in range(1, 41)}
    (maps,) = node_flow_maps(NODE)
    with maps:
        assert maps.name == "ns0/tc-0123456789abcdef"
        assert maps.flows.max_entries == ENTRIES
        batch = merge(maps.entries())
        assert maps._batches  # the kernel took batches
        maps._batches = False  # the key-by-key path must read the same
        assert merge(maps.entries()) == batch == merge(prog.flows())
        assert {k.src_port: c.octets for k, c in batch.items()} == sizes
        assert maps.counters(len(batch))["evicted"] == 0

        gone = [k for k in batch if k.src_port <= 10]
        send(prog, 1, 1)  # after the snapshot: `take` still sees it
        taken = merge(maps.take(gone))
        assert set(taken) == set(gone)
        first = next(k for k in gone if k.src_port == 1)
        assert taken[first].packets == batch[first].packets + 1
        known: dict[bytes, FlowKey] = {}
        assert merge(maps.entries(known)) == merge(maps.entries(known))  # keys decoded once
        assert set(known.values()) == set(batch) - set(gone)  # only the keys still there
        left = merge(maps.entries())
        assert set(left) == set(batch) - set(gone)
        counters = maps.counters(len(left))
        assert (counters["flows_deleted"], counters["evicted"]) == (10, 0)
        assert maps.take(gone) == []  # gone already: nothing, and nothing counted
        assert maps.counters(len(left))["flows_deleted"] == 10


def test_flows_beyond_the_map_are_counted_as_evicted(prog: LoadedProgram) -> None:
    for sport in range(1, 3 * ENTRIES):
        send(prog, sport, 0)
    (maps,) = node_flow_maps(NODE)
    with maps:
        live = len(maps.entries())
        counters = maps.counters(live)
        assert live <= ENTRIES
        assert counters["flows_created"] == 3 * ENTRIES - 1
        assert counters["evicted"] == 3 * ENTRIES - 1 - live > 0


def test_a_node_without_pins_has_no_maps() -> None:
    assert node_flow_maps(f"{NODE}-none") == []
