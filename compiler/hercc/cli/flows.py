"""`hercc flows export` and `hercc flows top`: a node's flow exporter, and its live top talkers.

export  hercc.state.flow_export.serve: the node's pinned flow maps, every second, to
        the collectors of the config `hercc apply` wrote (no spec needed). SIGTERM
        or SIGINT stop it: everything still counted is sent, and it exits 0.
        `--once`: one poll, then the same stop. `hercc apply` runs it (the
        `exporter` resource, hercc.state.exporter_proc); run by hand, it is the
        same command.
top     the node's flows ranked by bytes (or packets) per second, redrawn every
        `--interval` seconds like `top` when stdout is a terminal, as successive
        tables otherwise; `--count K` stops after K screens; Ctrl-C stops too.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path
from typing import Any

from hercc.cli.console import Console
from hercc.cli.exitcode import ExitCode
from hercc.diagnostics import UsageError
from hercc.resources.model import STATE_DIR

FLOWS_HELP = "Export a node's flows (NetFlow v9 / IPFIX), or show its top talkers."


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("flows", help=FLOWS_HELP, description=FLOWS_HELP)
    sub = p.add_subparsers(dest="flows_command", required=True, metavar="COMMAND")
    e = sub.add_parser(
        "export",
        help="run the node's flow exporter (hercc apply starts it)",
        description="Read the node's pinned flow maps and export them as `monitor netflow` "
        "says, until SIGTERM (which sends what is left).",
    )
    e.add_argument("--node", required=True)
    e.add_argument("--state-dir", default=STATE_DIR, help=f"default {STATE_DIR}")
    e.add_argument("--netns", help="send from this network namespace (the node's underlay)")
    e.add_argument("--once", action="store_true", help="one poll, send everything, exit")
    e.set_defaults(run=run_export)
    t = sub.add_parser(
        "top",
        help="the node's top talkers, live",
        description="The node's flows ranked by rate, refreshed in place like top.",
    )
    t.add_argument("--node", required=True)
    t.add_argument("--state-dir", default=STATE_DIR, help=f"default {STATE_DIR}")
    t.add_argument("--interval", type=float, default=2.0, metavar="S", help="default 2")
    t.add_argument("--count", type=int, metavar="K", help="stop after K refreshes")
    t.add_argument("--sort", choices=("bytes", "packets"), default="bytes")
    t.add_argument("--limit", type=int, default=20, metavar="N", help="rows (default 20)")
    t.set_defaults(run=run_top)


def run_export(args: argparse.Namespace, console: Console) -> int:
    from hercc.state.flow_export import serve

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stats = serve(args.node, Path(args.state_dir), stop, netns=args.netns, once=args.once)
    console.out.write(
        f"flows export: node {args.node}: {stats.records} records sent, "
        f"{stats.evicted} flows evicted before export\n"
    )
    return ExitCode.OK


def run_top(args: argparse.Namespace, console: Console) -> int:
    from hercc.cli.views.flows import CLEAR, render_top
    from hercc.flows.top import top_talkers
    from hercc.state.flow_export import NodeMaps

    if args.interval <= 0 or (args.count is not None and args.count < 1) or args.limit < 1:
        raise UsageError("--interval, --count and --limit must be positive")
    tty = console.out.isatty()
    maps = NodeMaps(args.node, Path(args.state_dir))
    previous, before, shown = None, 0.0, 0
    try:
        while True:
            current, now = maps.snapshot(), time.monotonic()
            talkers = top_talkers(current, previous, now - before, sort=args.sort, limit=args.limit)
            when = time.strftime("%H:%M:%S")
            screen = render_top(args.node, talkers, len(current), when)
            console.out.write(CLEAR + screen if tty else ("\n" if shown else "") + screen)
            console.out.flush()
            shown += 1
            if args.count is not None and shown >= args.count:
                return ExitCode.OK
            previous, before = current, now
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return ExitCode.OK  # how top is left
    finally:
        maps.close()
