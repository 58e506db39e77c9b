"""bench/flow_export_cost.py runs on a small synthetic map, ends with one JSON line of figures,
and leaves no pins behind; a read of 5,000 flows makes its two batch syscalls and one counter
lookup. A smoke test, not a measurement: the times are only checked to exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hercc.dataplane.attach import BPFFS

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="BPF maps need root")


def test_flow_export_cost_runs_and_ends_with_json() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "compiler")}
    argv = [sys.executable, str(ROOT / "bench" / "flow_export_cost.py"), "--flows", "5000",
            "--rounds", "1"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "flow_export_cost" and result["flows"] == 5000
    figures = result["us_per_flow"]
    assert figures["syscalls a read"] == 3  # two batches and the flows_created counter
    assert all(v > 0 for v in figures.values())
    left = [p.name for p in (Path(BPFFS) / "hercules").glob("flowcost*")]
    assert left == []
