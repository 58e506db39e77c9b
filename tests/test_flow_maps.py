"""The pinned flow and counter maps read from outside the loader (hercc.state.flow_maps).

A TC program with accounting and a 64-flow map is compiled, pinned under a
node name of this run, and run on crafted UDP frames (BPF_PROG_TEST_RUN).
The maps opened by path must hold what the loader's own BCC tables hold,
batch and key by key alike; a read hands over only what moved; `take` and
`drain` delete with the final counters and count the deletions; flows
beyond the map's size show as evictions.
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
from hercc.flows.records import MapChanges, merge
from hercc.state.bpf_pins import pin_loaded
from hercc.state.dataplane import LoadedProgram, compile_program
from hercc.state.errors import BccUnavailable
from hercc.state.flow_maps import FlowMaps, node_flow_maps
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
        batch = maps.read().changed  # the first read: every entry
        assert maps.batches  # the kernel took batches
        assert maps.read() == MapChanges({}, [])  # nothing moved: nothing to decode
        assert batch == merge(prog.flows())
        with FlowMaps(maps.directory) as keyed:
            keyed.batches = False  # the key-by-key path must read the same
            assert keyed.read().changed == batch
        assert {k.src_port: c.octets for k, c in batch.items()} == sizes
        assert maps.counters(len(batch))["evicted"] == 0

        send(prog, 40, 1)
        (moved,) = maps.read().changed.items()  # only what moved, its key the same object
        assert moved[0] is next(k for k in batch if k.src_port == 40)
        assert moved[1].packets == batch[moved[0]].packets + 1

        gone = [k for k in batch if k.src_port <= 10]
        send(prog, 1, 1)  # after the read: `take` still sees it
        taken = maps.take(gone)
        assert set(taken) == set(gone)
        first = next(k for k in gone if k.src_port == 1)
        assert taken[first].packets == batch[first].packets + 1
        assert maps.read() == MapChanges({}, [])  # what `take` deleted is not gone
        left = maps.current()
        assert set(left) == set(batch) - set(gone) and maps.live == len(left)
        counters = maps.counters(len(left))
        assert (counters["flows_deleted"], counters["evicted"]) == (10, 0)
        assert maps.take(gone) == {}  # gone already: nothing, and nothing counted
        assert maps.counters(len(left))["flows_deleted"] == 10

        send(prog, 11, 1)
        final = maps.drain()  # everything, with what came after the last read
        assert set(final) == set(left)
        eleven = next(k for k in left if k.src_port == 11)
        assert final[eleven].packets == left[eleven].packets + 1
        assert merge(prog.flows()) == {} and maps.live == 0
        assert maps.counters(0)["flows_deleted"] == 40


def test_flows_beyond_the_map_are_counted_as_evicted(prog: LoadedProgram) -> None:
    for sport in range(1, 3 * ENTRIES):
        send(prog, sport, 0)
    (maps,) = node_flow_maps(NODE)
    with maps:
        live = len(maps.read().changed)
        counters = maps.counters(live)
        assert live <= ENTRIES
        assert counters["flows_created"] == 3 * ENTRIES - 1
        assert counters["evicted"] == 3 * ENTRIES - 1 - live > 0


def test_a_node_without_pins_has_no_maps() -> None:
    assert node_flow_maps(f"{NODE}-none") == []
