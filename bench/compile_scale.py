"""Benchmark: `hercc check` on generated specs of 100, 1,000 and 5,000 nodes.

Each node runs one workload; 20% of the nodes are behind NAT. Prints wall
time and peak RSS for each size (each run is a fresh process, so RSS is the
compiler's own), and the ratio against the target of this machine: 1,000
nodes under 1 s, 5,000 under 5 s.

    python bench/compile_scale.py [--sizes 100,1000,5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

TARGETS_S = {1000: 1.0, 5000: 5.0}


def generate(nodes: int) -> str:
    out = ["network bench {", "  range  10.0.0.0/8", "  range6 fd00:be:ef::/48", "}", ""]
    for i in range(nodes):
        out.append(f"node n{i} {{")
        out.append("  network bench")
        if i % 5 == 4:
            out.append("  nat")
        else:
            out.append(f"  endpoint 198.18.{i // 250}.{i % 250 + 1}")
        out.append("}")
        out.append(f"workload w{i} {{\n  node n{i}\n}}")
    return "\n".join(out) + "\n"


def measure(spec: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `hercc check` process."""
    script = (
        "import resource, sys, time\n"
        "from hercc.cli.main import main\n"
        "t = time.perf_counter()\n"
        f"code = main(['check', {spec!r}])\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(dt, rss)\n"
        "sys.exit(code)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hercc check failed:\n{proc.stderr}")
    _, rss = proc.stdout.split()
    return wall, float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'nodes':>6} {'wall s (best)':>14} {'peak RSS MiB':>13} {'target s':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = os.path.join(tmp, f"scale{size}.herc")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(generate(size))
            runs = [measure(path) for _ in range(args.repeat)]
            wall = min(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            target = TARGETS_S.get(size)
            ratio = f"{wall / target:.2f}" if target else "-"
            print(f"{size:>6} {wall:>14.3f} {rss:>13.1f} {target or '-':>9} {ratio:>6}")


if __name__ == "__main__":
    main()
