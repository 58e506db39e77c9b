"""Benchmark: hercc's accounting and exporter against softflowd, on the same traffic, to nfcapd.

The lab is bench/bpf_bench.py's (sender -> router -> receiver). Both
exporters watch the router's veth from the sender and send IPFIX to an
nfcapd of their own in the router namespace:

- hercc: bench/hercc_exporter.py, one process that loads and pins hercc's
  program for `fastpath off` + `monitor { netflow { protocol ipfix } }`
  (accounting only, on the veth's TC ingress) as apply does, and runs what
  `hercc flows export` runs (hercc.state.flow_export.serve) over its pins;
- softflowd (Debian), capturing the same veth with libpcap:
  `softflowd -d -i VETH -n COLLECTOR -v 10 -B 67108864 -m 65536`.

Traffic, the same for both and for a run with neither (the baseline):

- tcp: one bounded iperf3 transfer (-n), with GSO as veths have it. Truth:
  the sender's TcpOutSegs + TcpRetransSegs (wire segments) and its IP octets
  plus the headers of the segments GSO cuts (IpExtOutOctets + (segments -
  IpOutRequests) x 52);
- udp: many small flows from the sender's XDP generator (live frames):
  --udp-flows flows of --udp-packets frames of 106 bytes each, exactly.

CPU per packet, counted the same way for both: the exporter's own CPU time
(hercc: from "ready", compiling excluded; softflowd: all of it) plus what the
sender's CPU time grew by against the baseline run (the TC program and the
pcap copy both run in the sender's context: veth delivery is synchronous),
over the truth's wire packets. tcp: iperf3's user + system time; udp: the
generator thread's CPU time. The median over --rounds, runs interleaved.
Target: hercc at most 1/5 of softflowd's CPU per packet, exact counts.
Ends with one JSON line. Needs root, BCC, iperf3, softflowd, nfcapd, nfdump.

    python bench/flows_vs_softflowd.py [--quick] [--rounds N] [--tcp-bytes N] [--udp-flows N]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler")
)

import bpf_bench as B
from gateway_lab import Lab, LabError, wait_for

TOOLS = ("iperf3", "softflowd", "softflowctl", "nfcapd", "nfdump", "ethtool")
EXPORTERS = ("none", "hercc", "softflowd")
CPU_TARGET = 0.2  # hercc's CPU per packet / softflowd's
TCP_HEADERS = 52  # IPv4 + TCP with timestamps: each GSO segment's own headers
IPERF_PORT = 5201
COLLECTOR_BUFFER = 4 * 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))

FiveTuple = tuple[str, str, int, int, int]


@dataclass
class Run:
    """One traffic run under one exporter."""

    traffic: str
    exporter: str
    sender_cpu_s: float
    truth_packets: int
    truth_bytes: int
    truth_flows: dict[FiveTuple, tuple[int, int]] = field(default_factory=dict)  # udp only
    exporter_cpu_s: float = 0.0
    got: dict[FiveTuple, tuple[int, int]] = field(default_factory=dict)
    sequence_errors: int = 0
    collector_drops: int = 0  # datagrams the collector's socket had no room for
    capture_drops: int = 0  # softflowd: packets libpcap dropped (its buffer was full)


def snmp(lab: Lab, ns: str) -> dict[str, int]:
    """The namespace's /proc/net/snmp and netstat counters, as "TcpOutSegs" and the like."""
    out: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = lab.run(ns, ["cat", path]).splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=True):
            prefix = names.split(":")[0]
            for n, v in zip(names.split()[1:], values.split()[1:], strict=True):
                out[prefix + n] = int(v)
    return out


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab, self.args = lab, args
        self.topo = B.Topology.up(lab)
        self.gen, self.frame = B.generator(self.topo)
        self.port = 2055
        server = lab.start(self.topo.rcv, ["iperf3", "-s", "-p", str(IPERF_PORT)], "iperf3-s")
        listening = ["ss", "-Hltn", f"sport = :{IPERF_PORT}"]
        wait_for(lambda: bool(lab.run(self.topo.rcv, listening).strip()), "iperf3", server, lab)

    def close(self) -> None:
        self.gen.close()

    # traffic

    def tcp(self, run_label: str) -> Run:
        before = snmp(self.lab, self.topo.snd)
        argv = ["ip", "netns", "exec", self.topo.snd, "iperf3", "-c", B.RECEIVER_ADDR,
                "-p", str(IPERF_PORT), "-n", str(self.args.tcp_bytes)]  # fmt: skip
        with open(os.path.join(self.lab.workdir, f"{run_label}-iperf3.log"), "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise LabError(f"iperf3 client failed ({proc.returncode}), see {run_label}-iperf3.log")
        time.sleep(0.3)  # the last ACK of the close leaves after iperf3 has exited
        after = snmp(self.lab, self.topo.snd)
        names = ("TcpOutSegs", "TcpRetransSegs", "IpOutRequests", "IpExtOutOctets")
        d = {k: after[k] - before[k] for k in names}
        packets = d["TcpOutSegs"] + d["TcpRetransSegs"]  # OutSegs leaves retransmissions out
        octets = d["IpExtOutOctets"] + (packets - d["IpOutRequests"]) * TCP_HEADERS
        return Run("tcp", "", usage.ru_utime + usage.ru_stime, packets, octets)

    def udp(self, run_label: str) -> Run:
        t, flows, each = self.topo, self.args.udp_flows, self.args.udp_packets
        self.gen.set("flows", flows)
        start = self.gen.total("frames")  # the generator runs on one CPU: its frame number

        def work() -> float:
            t0 = B.thread_cpu_ns()
            B.send_live(self.gen.fd, self.frame, t.ifindex[t.snd, "eth0"], flows * each)
            return (B.thread_cpu_ns() - t0) / 1e9

        cpu = B.in_netns(t.snd, work, self.args.cpu)
        counts: dict[int, int] = defaultdict(int)
        for n in range(start, start + flows * each):
            counts[B.BASE_PORT + n % flows] += 1
        l3 = B.FRAME_LEN - 14
        truth = {
            (B.SENDER_ADDR, B.RECEIVER_ADDR, port, B.SINK_PORT, 17): (k, k * l3)
            for port, k in counts.items()
        }
        return Run("udp", "", cpu, flows * each, flows * each * l3, truth)

    # exporters

    def collector(self, label: str) -> tuple[subprocess.Popen[bytes], str, int]:
        self.port += 1
        d = os.path.join(self.lab.workdir, label)
        os.makedirs(d)
        # -B: the most the machine's net.core.rmem_max gives; a flush is a burst of datagrams
        argv = ["nfcapd", "-w", d, "-b", "127.0.0.1", "-p", str(self.port), "-t", "600",
                "-I", label, "-B", str(COLLECTOR_BUFFER)]  # fmt: skip
        proc = self.lab.start(self.topo.rtr, argv, f"{label}-nfcapd")
        log = os.path.join(self.lab.workdir, f"{label}-nfcapd.log")
        wait_for(lambda: "Startup" in _read(log), "nfcapd", proc, self.lab)
        return proc, d, self.port

    def exporter(self, kind: str, label: str, port: int) -> subprocess.Popen[bytes]:
        t, w = self.topo, self.lab.workdir
        if kind == "hercc":
            # in the host's mount namespace, where the bpffs is: it enters the router's itself
            argv = [sys.executable, os.path.join(HERE, "hercc_exporter.py"), "--workdir", w,
                    "--collector", f"127.0.0.1:{port}", "--dev", t.r_in,
                    "--netns", t.rtr]  # fmt: skip
            log = os.path.join(w, f"{label}.log")
            with open(log, "wb") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
            self.lab.procs.append((label, proc))
            wait_for(lambda: "ready" in _read(log), "hercc's exporter", proc, self.lab, 120)
            return proc
        files = ["-p", os.path.join(w, f"{label}.pid"), "-c", os.path.join(w, f"{label}.ctl")]
        argv = ["softflowd", "-d", "-i", t.r_in, "-n", f"127.0.0.1:{port}", "-v", "10",
                "-B", str(self.args.softflowd_buffer), "-m", "65536", *files]  # fmt: skip
        proc = self.lab.start(t.rtr, argv, label)
        # ready once its packet socket exists in the router's namespace
        wait_for(lambda: len(self.lab.run(t.rtr, ["cat", "/proc/net/packet"]).splitlines()) > 1,
                 "softflowd's capture", proc, self.lab)  # fmt: skip
        return proc

    @staticmethod
    def cpu_so_far(proc: subprocess.Popen[bytes]) -> float:
        """A running single-threaded process's CPU seconds (/proc/PID/schedstat, in ns)."""
        with open(f"/proc/{proc.pid}/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[0]) / 1e9

    def stop(self, proc: subprocess.Popen[bytes], control: str | None = None) -> float:
        """Stop an exporter, then its CPU seconds (user + system, from wait4). softflowd
        exports its flows on `softflowctl shutdown` (its control socket), not on SIGTERM."""
        if control is None:
            proc.send_signal(signal.SIGTERM)
        else:
            subprocess.run(["softflowctl", "-c", control, "shutdown"], capture_output=True,
                           timeout=30, check=False)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.lab.procs = [(n, p) for n, p in self.lab.procs if p is not proc]
        return float(usage.ru_utime + usage.ru_stime)

    def one(self, traffic: str, kind: str, r: int) -> Run:
        label = f"{traffic}-{kind}-{r}"
        if kind == "none":
            run = self.tcp(label) if traffic == "tcp" else self.udp(label)
            run.exporter = kind
            return run
        nfcapd, flows_dir, port = self.collector(label)
        dropped = snmp(self.lab, self.topo.rtr)["UdpRcvbufErrors"]
        proc = self.exporter(kind, label, port)
        # softflowd's start (mapping its 64 MB capture ring) is not counted, as hercc's
        # compiling is not: the same CPU from "ready" to the end for both
        started = self.cpu_so_far(proc) if kind == "softflowd" else 0.0
        run = self.tcp(label) if traffic == "tcp" else self.udp(label)
        run.exporter = kind
        time.sleep(self.args.settle)  # the capture drains its buffer
        control = None if kind == "hercc" else os.path.join(self.lab.workdir, f"{label}.ctl")
        if control is not None:
            run.capture_drops = softflowd_drops(control)
        cpu = self.stop(proc, control)
        if kind == "hercc":
            text = _read(os.path.join(self.lab.workdir, f"{label}.log"))
            if not text.rstrip().endswith("}"):
                raise LabError(f"hercc's exporter ended without its figures:\n{text[-2000:]}")
            run.exporter_cpu_s = float(json.loads(text.splitlines()[-1])["cpu_s"])
        else:
            run.exporter_cpu_s = cpu - started
        time.sleep(0.5)  # the last datagrams reach nfcapd
        self.lab.stop(nfcapd)
        run.collector_drops = snmp(self.lab, self.topo.rtr)["UdpRcvbufErrors"] - dropped
        run.got, run.sequence_errors = read_flows(flows_dir, self.lab.workdir, label)
        return run

    def run(self) -> list[Run]:
        a = self.args
        print(f"lab {self.lab.prefix}: tcp {a.tcp_bytes} bytes, udp {a.udp_flows} flows x "
              f"{a.udp_packets} packets, {a.rounds} round(s)", file=sys.stderr)  # fmt: skip
        return [
            self.one(traffic, kind, r)
            for r in range(a.rounds)
            for traffic in ("tcp", "udp")
            for kind in EXPORTERS
        ]


def softflowd_drops(control: str) -> int:
    """What `softflowctl statistics` says libpcap dropped."""
    done = subprocess.run(["softflowctl", "-c", control, "statistics"], capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    found = re.search(r"Packets dropped by libpcap: (\d+)", done.stdout)
    return int(found[1]) if found else -1


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def read_flows(
    flows_dir: str, workdir: str, label: str
) -> tuple[dict[FiveTuple, tuple[int, int]], int]:
    """What nfcapd stored, per 5-tuple from the sender to the receiver, and its sequence errors
    (from its log, and nfdump's file statistics)."""
    files = sorted(glob.glob(os.path.join(flows_dir, "nfcapd.2*")))
    got: dict[FiveTuple, list[int]] = defaultdict(lambda: [0, 0])
    errors = 0
    for path in files:
        out = subprocess.run(["nfdump", "-r", path, "-o", "json"], capture_output=True,
                             text=True, timeout=120, check=True).stdout  # fmt: skip
        if "No matching flows" in out:
            continue
        try:
            records = json.loads(out or "[]")
        except json.JSONDecodeError:
            raise LabError(f"nfdump -o json {path}: not JSON: {out[:300]!r}") from None
        for rec in records:
            if rec.get("src4_addr") != B.SENDER_ADDR or rec.get("dst4_addr") != B.RECEIVER_ADDR:
                continue
            key = (B.SENDER_ADDR, B.RECEIVER_ADDR, rec.get("src_port", 0), rec.get("dst_port", 0),
                   rec["proto"])  # fmt: skip
            got[key][0] += rec["in_packets"]
            got[key][1] += rec["in_bytes"]
        stats = subprocess.run(["nfdump", "-r", path, "-I"], capture_output=True, text=True,
                               timeout=60, check=True).stdout  # fmt: skip
        errors += sum(int(x) for x in re.findall(r"Sequence failures: (\d+)", stats))
    log = _read(os.path.join(workdir, f"{label}-nfcapd.log"))
    errors = max(errors, sum(int(x) for x in re.findall(r"Sequence Errors: (\d+)", log)))
    return {k: (v[0], v[1]) for k, v in got.items()}, errors


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summary(runs: list[Run]) -> dict[str, Any]:
    """Per traffic and exporter: counts against the truth, CPU per packet (median of rounds)."""
    out: dict[str, Any] = {}
    for traffic in ("tcp", "udp"):
        base = [r for r in runs if r.traffic == traffic and r.exporter == "none"]
        for kind in ("hercc", "softflowd"):
            mine = [r for r in runs if r.traffic == traffic and r.exporter == kind]
            per_packet, own, added = [], [], []
            for b, r in zip(base, mine, strict=True):
                extra = r.sender_cpu_s - b.sender_cpu_s
                own.append(r.exporter_cpu_s / r.truth_packets * 1e9)
                added.append(extra / r.truth_packets * 1e9)
                per_packet.append((r.exporter_cpu_s + extra) / r.truth_packets * 1e9)
            last = mine[-1]
            packets = sum(v[0] for v in last.got.values())
            octets = sum(v[1] for v in last.got.values())
            entry: dict[str, Any] = {
                "truth_packets": last.truth_packets,
                "truth_bytes": last.truth_bytes,
                "packets": packets,
                "bytes": octets,
                "exact_totals": packets == last.truth_packets and octets == last.truth_bytes,
                "records_flows": len(last.got),
                "sequence_errors": max(r.sequence_errors for r in mine),
                "collector_drops": max(r.collector_drops for r in mine),
                "capture_drops": max(r.capture_drops for r in mine),
                "ns_per_packet": round(_median(per_packet), 1),
                "exporter_ns_per_packet": round(_median(own), 1),
                "sender_added_ns_per_packet": round(_median(added), 1),
            }
            if traffic == "udp":
                truth = last.truth_flows
                entry["truth_flows"] = len(truth)
                entry["exact_flows"] = sum(1 for k, v in truth.items() if last.got.get(k) == v)
            out[f"{traffic} {kind}"] = entry
        out[f"{traffic} baseline sender ns_per_packet"] = round(
            _median([b.sender_cpu_s / b.truth_packets * 1e9 for b in base]), 1
        )
    return out


def results(runs: list[Run], args: argparse.Namespace) -> dict[str, Any]:
    s = summary(runs)
    ratios = {t: s[f"{t} hercc"]["ns_per_packet"] / s[f"{t} softflowd"]["ns_per_packet"]
              for t in ("tcp", "udp")}  # fmt: skip
    exact = {t: s[f"{t} hercc"]["exact_totals"] for t in ("tcp", "udp")}
    return {
        "bench": "flows_vs_softflowd",
        "rounds": args.rounds,
        "tcp_bytes": args.tcp_bytes,
        "udp_flows": args.udp_flows,
        "udp_packets_per_flow": args.udp_packets,
        "softflowd_buffer": args.softflowd_buffer,
        "results": s,
        "cpu_ratio": {t: round(v, 3) for t, v in ratios.items()},
        "targets": {
            "cpu_ratio": {
                "target": CPU_TARGET,
                "met": all(0 <= v <= CPU_TARGET for v in ratios.values()),
            },
            "hercc_exact": {"met": all(exact.values())},
        },
    }


def report(res: dict[str, Any]) -> None:
    s = res["results"]
    print(f"{'run':<16} {'truth pkts':>11} {'exported':>11} {'truth bytes':>14} {'exported':>14} "
          f"{'seq err':>7} {'drops':>5} {'ns/pkt':>7} {'own':>6} {'sender+':>7}")  # fmt: skip
    for traffic in ("tcp", "udp"):
        for kind in ("hercc", "softflowd"):
            e = s[f"{traffic} {kind}"]
            print(f"{traffic + ' ' + kind:<16} {e['truth_packets']:>11,} {e['packets']:>11,} "
                  f"{e['truth_bytes']:>14,} {e['bytes']:>14,} {e['sequence_errors']:>7} "
                  f"{e['collector_drops']:>5} "
                  f"{e['ns_per_packet']:>7.1f} {e['exporter_ns_per_packet']:>6.1f} "
                  f"{e['sender_added_ns_per_packet']:>7.1f}")  # fmt: skip
            if "exact_flows" in e:
                print(f"{'':<16} flows exact: {e['exact_flows']} of {e['truth_flows']}")
            if kind == "softflowd":
                print(f"{'':<16} dropped by libpcap: {e['capture_drops']:,}")
    for traffic, ratio in res["cpu_ratio"].items():
        print(f"  {traffic}: hercc's CPU a packet is {ratio:.3f}x softflowd's (target <= "
              f"{CPU_TARGET}): {'met' if 0 <= ratio <= CPU_TARGET else 'NOT met'}")  # fmt: skip
    print(json.dumps(res, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less traffic, one round")
    parser.add_argument("--rounds", type=int, help="default 3; --quick 1")
    parser.add_argument("--tcp-bytes", type=int, help="iperf3 -n (default 4 GB; --quick 1 GB)")
    parser.add_argument("--udp-flows", type=int, help="default 50,000; --quick 20,000")
    parser.add_argument("--udp-packets", type=int, default=10, help="frames a UDP flow")
    parser.add_argument("--softflowd-buffer", type=int, default=67108864, help="softflowd -B")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before stopping")
    parser.add_argument("--cpu", type=int, default=1, help="the core the UDP generator runs on")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.tcp_bytes = args.tcp_bytes or (10**9 if args.quick else 4 * 10**9)
    args.udp_flows = args.udp_flows or (20_000 if args.quick else 50_000)
    if os.geteuid() != 0:
        sys.exit("flows_vs_softflowd needs root (network namespaces, BPF)")
    if missing := [t for t in TOOLS if shutil.which(t) is None]:
        sys.exit(f"flows_vs_softflowd needs {', '.join(missing)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="flows-bench-") as tmp:
        os.chmod(tmp, 0o755)
        lab = Lab(tmp)
        bench = None
        try:
            bench = Bench(lab, args)
            runs = bench.run()
        except LabError as err:
            sys.exit(f"flows_vs_softflowd: {err}")
        finally:
            if bench is not None:
                bench.close()
            lab.close()
    report(results(runs, args))


if __name__ == "__main__":
    main()
