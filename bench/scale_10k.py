"""Benchmark: `hercc build` of 10,000 nodes, 90% nat, 100 relays (wg setconf output).

1,000 public nodes, of which the first 100 relay (`relay off` on the rest),
and 9,000 nat nodes; no explicit links, so default costs. Prints the phases
(compile with routing, render, manifest, write) measured in process, then the
whole command as a child process with its peak RSS, against the target:
under 10 s on this machine. The output size is printed too: every nat node
peers directly with every public node (cost 10 beats 20 through a relay), so
the files hold about 19 million peer entries whatever the compiler does.

    python bench/scale_10k.py [--nodes 10000] [--nat-every 10] [--relays 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meshgen import mesh_spec
from runner import hercc, measure

TARGET_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--nat-every", type=int, default=10, help="1 in N nodes is public")
    parser.add_argument("--relays", type=int, default=100)
    args = parser.parse_args()
    from hercc.backends import render_all
    from hercc.pipeline import compile_spec
    from hercc.writer import with_manifest, write_tree

    text, _ = mesh_spec(args.nodes, nat_every=args.nat_every, relays=args.relays)
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "scale.herc")
        with open(spec, "w", encoding="utf-8") as fh:
            fh.write(text)
        phases = []
        t = time.perf_counter()
        model = compile_spec(spec, use_lock=False).ir
        phases.append(("compile + routing", time.perf_counter() - t))
        t = time.perf_counter()
        files = render_all(model, ["wireguard"])
        phases.append(("render wg setconf", time.perf_counter() - t))
        t = time.perf_counter()
        encoded = with_manifest(files)
        del files
        phases.append(("encode + manifest", time.perf_counter() - t))
        size = sum(len(v) for v in encoded.values())
        t = time.perf_counter()
        write_tree(os.path.join(tmp, "phases"), encoded)
        phases.append(("write", time.perf_counter() - t))
        del encoded, model
        wall, rss = measure(
            [*hercc(), "build", spec, "-o", os.path.join(tmp, "out"), "--backend", "wireguard"]
        )
    print(f"{args.nodes} nodes, 1 in {args.nat_every} public, {args.relays} relays")
    for name, seconds in phases:
        print(f"  {name:<20} {seconds:7.2f} s")
    print(f"output: {size / 1e9:.2f} GB in {args.nodes} wg setconf files")
    print(f"hercc build (child process): {wall:.2f} s, peak RSS {rss:.0f} MiB")
    verdict = "met" if wall < TARGET_S else "NOT met"
    print(f"ratio to the {TARGET_S:.0f} s target: {wall / TARGET_S:.2f} ({verdict})")


if __name__ == "__main__":
    main()
