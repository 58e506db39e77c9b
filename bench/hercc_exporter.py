"""hercc's accounting and flow exporter as one process, for bench/flows_vs_softflowd.py.

Run in the host's mount namespace (the bpffs is there), with the router's
network namespace named by --netns. It does what `hercc apply` does for a
node with `monitor netflow`, then runs what `hercc flows export` runs:

- compiles hercc's TC program for the bench spec with `fastpath off` and
  `monitor { netflow }` (accounting only, the stack forwards), pins its maps
  under the bpffs as a node of its own (`flowsbench<PID>`), records that
  node's namespace and its exporter config in a state directory under
  --workdir, enters --netns and attaches the program on the ingress of --dev;
- prints "ready" and runs hercc.state.flow_export.serve (the exporter of
  `hercc flows export --node N --netns NS`: the pinned maps, its polls, its
  deletions, its state file) until SIGTERM, which makes it drain the map and
  send the rest;
- detaches, unpins, and prints one JSON line: the CPU seconds (user +
  system) it spent from "ready" to the end, and the exporter's figures.

Compiling (LLVM) is not counted: apply does it once per change.

    python bench/hercc_exporter.py --workdir DIR --collector H:P --dev IF --netns NS
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler")
)

import bpf_bench as B

NAMESPACE = "ns"  # the node's one namespace, as the registry and the pins name it


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--collector", required=True, help="host:port of the collector")
    parser.add_argument("--dev", required=True, help="the interface to account on")
    parser.add_argument("--netns", required=True, help="the router's network namespace")
    args = parser.parse_args()

    from pyroute2 import IPRoute  # type: ignore[import-untyped]
    from pyroute2.netns import setns  # type: ignore[import-untyped]

    from hercc.dataplane.attach import node_root, pin_dir
    from hercc.flows.exporter import ExportConfig
    from hercc.state.bpf_pins import pin_loaded
    from hercc.state.exporter_proc import ExporterFiles
    from hercc.state.flow_export import serve
    from hercc.state.registry import OwnedRegistry

    node = f"flowsbench{os.getpid()}"
    state = Path(args.workdir) / f"state-{node}"
    program = B.compile_hercc(args.workdir, "off", args.collector, "tc")
    _, entry = program.entry(args.dev)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    index = None
    try:
        pin_loaded(program.loaded, Path(pin_dir(node, NAMESPACE, "tc", "0" * 16)))
        OwnedRegistry(node, state).save({NAMESPACE})
        config = ExportConfig.from_ir(program.model.netflow, node=node)
        ExporterFiles(state, node).config.write_text(json.dumps(config.attrs()))
        setns(args.netns, flags=0)  # serve's --netns; the attachment is made there too
        with IPRoute() as ipr:
            (index,) = ipr.link_lookup(ifname=args.dev)
            ipr.tc("add", "clsact", index)
            ipr.tc("add-filter", "bpf", index, ":1", fd=program.loaded.fds[entry], name=entry,
                   parent=0xFFFFFFF2, classid=1, direct_action=True)  # fmt: skip
        start = cpu_seconds()
        print("ready", flush=True)
        stats = serve(node, state, stop)
        cpu = cpu_seconds() - start
        saved = json.loads(ExporterFiles(state, node).state.read_text())
    finally:
        if index is not None:
            with IPRoute() as ipr:
                ipr.tc("del", "clsact", index)
        shutil.rmtree(node_root(node), ignore_errors=True)  # bpffs: unlinks the pins
        program.loaded.close()
    print(json.dumps({"cpu_s": cpu, "records": stats.records, "flows": stats.flows,
                      "evicted": stats.evicted, "datagrams": saved["packets_sent"]}),
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
