"""hercc's accounting and flow exporter as one process, for bench/flows_vs_softflowd.py.

Run inside the router namespace: it compiles hercc's TC program for the
bench spec with `fastpath off` and `monitor { netflow }` (accounting only,
the stack forwards), attaches it on the ingress of --dev as apply does,
prints "ready", and runs hercc.flows' Exporter over the program's flow map
until SIGTERM; then it flushes, detaches, and prints one JSON line: the CPU
seconds (user + system) it spent from "ready" to the end, and the table's
figures. Compiling (LLVM) is not counted: apply does it once per change.

    ip netns exec NS python bench/hercc_exporter.py --workdir DIR --collector H:P --dev IF
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler")
)

import bpf_bench as B


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--collector", required=True, help="host:port of the collector")
    parser.add_argument("--dev", required=True, help="the interface to account on")
    args = parser.parse_args()

    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    from hercc.flows.exporter import ExportConfig, Exporter

    program = B.compile_hercc(args.workdir, "off", args.collector, "tc")
    _, entry = program.entry(args.dev)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=args.dev)
        ipr.tc("add", "clsact", index)
        ipr.tc("add-filter", "bpf", index, ":1", fd=program.loaded.fds[entry], name=entry,
               parent=0xFFFFFFF2, classid=1, direct_action=True)  # fmt: skip
    config = ExportConfig.from_ir(program.model.netflow, node=B.NODE)
    senders = config.open_senders()
    try:
        exporter = Exporter(config, program.loaded.flows, senders)
        start = cpu_seconds()
        print("ready", flush=True)
        stats = exporter.run(stop=stop.is_set, sleep=stop.wait)
        cpu = cpu_seconds() - start
        counters = program.loaded.counters()
    finally:
        for sender in senders:
            sender.close()
        with IPRoute() as ipr:
            ipr.tc("del", "clsact", index)
        program.loaded.close()
    print(json.dumps({"cpu_s": cpu, "records": stats.records, "flows": stats.flows,
                      "evicted": stats.evicted, "counters": counters}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
