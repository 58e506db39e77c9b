"""bench/dataplane_pps.py and bench/flows_vs_softflowd.py: they run, print one JSON line, clean up.

The live runs are smoke tests with tiny loads, not measurements: figures are
only checked to exist, except what must hold at any load: hercc's exported
counts equal the truth, flow by flow. The verdicts are checked on made-up
figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import dataplane_pps  # noqa: E402
import flows_vs_softflowd  # noqa: E402
from flows_vs_softflowd import Run  # noqa: E402


def _need(tools: tuple[str, ...]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and BPF")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/debian-packages.txt installs them)")
    try:
        import bcc  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pytest.skip("needs BCC (python3-bpfcc, linked into the venv)")


def _run(argv: list[str]) -> tuple[dict[str, object], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "compiler")}
    env.setdefault("BCC_KERNEL_SOURCE", "/var/cache/hercules/kernel-headers")
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=170, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    prefix = re.search(r"^lab (hb[0-9a-f]{4}):", done.stderr, re.M)
    assert prefix is not None, done.stderr
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert prefix[1] not in listed.stdout  # its namespaces are gone
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


@pytest.mark.live
def test_dataplane_pps_runs_every_path_and_ends_with_json() -> None:
    _need(("ethtool",))
    result, out = _run([str(BENCH / "dataplane_pps.py"), "--frames", "20000", "--rounds", "1"])
    assert result["bench"] == "dataplane_pps"
    assert {"fastpath_ratio", "accounting_overhead", "accounting_ns_60k"} <= set(result)
    pps = result["pps"]
    assert isinstance(pps, dict) and set(pps) == {p.name for p in dataplane_pps.PATHS}
    assert all(v > 0 for v in pps.values())
    program_ns = result["program_ns"]
    assert isinstance(program_ns, dict) and all(v > 0 for v in program_ns.values())
    assert sum(": met" in x or ": NOT met" in x for x in out.splitlines()) == 3


@pytest.mark.live
def test_flows_vs_softflowd_hercc_exports_exactly_what_was_sent() -> None:
    _need(flows_vs_softflowd.TOOLS)
    argv = [str(BENCH / "flows_vs_softflowd.py"), "--rounds", "1", "--tcp-bytes", "20000000",
            "--udp-flows", "300", "--udp-packets", "4", "--settle", "0.3"]  # fmt: skip
    result, _ = _run(argv)
    assert result["bench"] == "flows_vs_softflowd"
    s = result["results"]
    assert isinstance(s, dict)
    for traffic in ("tcp", "udp"):
        hercc = s[f"{traffic} hercc"]
        assert (hercc["packets"], hercc["bytes"]) == (hercc["truth_packets"], hercc["truth_bytes"])
        assert hercc["sequence_errors"] == 0
        assert s[f"{traffic} softflowd"]["truth_packets"] > 0
    assert s["udp hercc"]["exact_flows"] == s["udp hercc"]["truth_flows"] == 300


def test_dataplane_targets_from_made_up_rounds() -> None:
    # xdp at 1.6x kernel: 625 ns a packet; accounting adds 50 ns to the program (8%), 120 ns
    # at 60k flows
    rounds = [{p.name: 1e6 for p in dataplane_pps.PATHS} | {"xdp": 1.6e6}] * 3
    program = {p.name: 200.0 for p in dataplane_pps.PATHS if p.kind != "kernel"}
    for label in ("xdp", "xdp generic", "tc"):
        program |= {f"{label} + accounting": 250.0, f"{label} + accounting, 60k flows": 320.0}
    res = dataplane_pps.results(rounds, program)
    assert res["fastpath_ratio"] == 1.6
    assert (res["accounting_overhead"], res["accounting_ns_60k"]) == (0.08, 120.0)
    assert res["accounting_overhead_tc"] == 0.05  # against tc's 1000 ns a packet
    met = {k: v["met"] for k, v in res["targets"].items()}
    assert met == {"fastpath_ratio": True, "accounting_overhead": True, "accounting_ns_60k": False}


def _runs(traffic: str, base: float, hercc: float, softflowd: float) -> list[Run]:
    """Sender CPU seconds (1M packets) with neither, hercc and softflowd; exporters 0.1 s each."""
    got = {("a", "b", 1, 2, 17): (1_000_000, 2_000_000)}
    return [
        Run(traffic, "none", base, 1_000_000, 2_000_000),
        Run(traffic, "hercc", hercc, 1_000_000, 2_000_000, {}, 0.01, got),
        Run(traffic, "softflowd", softflowd, 1_000_000, 2_000_000, {}, 0.1, got),
    ]


def test_cpu_per_packet_is_exporter_time_plus_what_the_sender_spent_more() -> None:
    runs = _runs("tcp", 1.0, 1.02, 1.5) + _runs("udp", 1.0, 1.0, 1.1)
    args = type("A", (), {"rounds": 1, "tcp_bytes": 1, "udp_flows": 1, "udp_packets": 1,
                          "softflowd_buffer": 1})()  # fmt: skip
    res = flows_vs_softflowd.results(runs, args)  # type: ignore[arg-type]
    assert res["results"]["tcp hercc"]["ns_per_packet"] == 30.0  # 10 ns own + 20 ns sender
    assert res["results"]["tcp softflowd"]["ns_per_packet"] == 600.0
    assert res["cpu_ratio"] == {"tcp": 0.05, "udp": 0.05}
    assert res["targets"]["cpu_ratio"]["met"] and res["targets"]["hercc_exact"]["met"]
