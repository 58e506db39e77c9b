"""Benchmark: the web gateway (HAProxy, then WireGuard) against ssh -R and the tunnel alone.

One lab of three network namespaces: a client ("the Internet"), the gateway
and a node running nginx (a small static file, TLS on 443) and iperf3. The
node dials the gateway over WireGuard (wireguard-go at both ends). The
gateway's HAProxy and both tunnel ends use the files hercc renders for
bench/gateway_pieces.py's spec, whose addresses the lab takes as its own.
The same backend is then measured, one path after another:

- direct: the client straight to the node over a veth;
- the tunnel (the ceiling): from the gateway to the workload's tunnel address;
- our gateway in http, tcp and SNI (https passthrough) modes;
- `ssh -N -R` from the node to an sshd on the gateway;
- HAProxy with no tunnel (the same config, servers on the node's own address).

Per path: keep-alive requests/s and p99 (wrk --latency), new connections/s
(wrk with `Connection: close`) and bulk throughput (iperf3 through the `tcp`
expose). Targets, against the tunnel measured in the same run: keep-alive
req/s at least 0.8x with a p99 under ssh -R's; new connections/s at least
0.8x in tcp and SNI modes and 1x in http mode; bulk at least 0.8x. Each
ratio is taken within a round (the ceiling measured beside the path), and
the median over --rounds is reported. HAProxy is pinned to core 0 and both
wireguard-go to core 1 (--pin-haproxy/--pin-wg; "" to not pin). Ends with
one JSON line. Needs root, nginx, wrk, haproxy, iperf3, sshd, ssh,
wireguard-go, wg and openssl. About 4.5 minutes with the defaults; the
results and the tuning are in docs/gateway-performance.md.

    python bench/gateway_vs_ssh.py [--duration 5] [--rounds 2] [--quick] [--mtu N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler")
)

import gateway_pieces as P
from gateway_lab import Lab, LabError, wait_for

TOOLS = ("nginx", "wrk", "haproxy", "iperf3", "sshd", "ssh", "wireguard-go", "wg", "openssl")
KEEPALIVE_TARGET = 0.8
NEWCONN_TARGET = {"http": 1.0, "tcp": 0.8, "sni": 0.8}
BULK_TARGET = 0.8
COLUMNS = (("keep-alive/s", "rps", ".0f"), ("p99 ms", "p99_ms", ".2f"),
           ("new conn/s", "cps", ".0f"), ("Mbit/s", "bulk_mbit", ".0f"))  # fmt: skip


@dataclass
class Figures:
    rps: float | None = None  # keep-alive requests/s
    p99_ms: float | None = None
    cps: float | None = None  # new connections/s
    bulk_mbit: float | None = None
    errors: int = 0  # non-2xx answers and socket errors, over all of this path's runs


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]


def compile_gateway(workdir: str, pubkeys: dict[str, str]) -> dict[str, str]:
    from hercc.backends import render_all
    from hercc.pipeline import compile_spec

    spec = os.path.join(workdir, "bench.herc")
    with open(spec, "w", encoding="utf-8") as fh:
        fh.write(P.SPEC)
    model = compile_spec(spec, use_lock=False, pubkeys=pubkeys).ir
    return render_all(model, ["haproxy", "gateway-tunnels"])


def wg_quick(text: str, key: str) -> str:
    return re.findall(rf"^{key} = (.*)$", text, re.M)[0]


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab, self.args = lab, args
        self.c, self.g, self.n = lab.netns("c"), lab.netns("g"), lab.netns("n")

    def wrk(self, ns: str, url: str, close: bool, fig: Figures) -> None:
        argv = ["wrk", "-t", str(self.args.wrk_threads), "-c", str(self.args.connections),
                "-d", f"{self.args.duration}s", "--latency", url]  # fmt: skip
        if close:
            argv[1:1] = ["-H", "Connection: close"]
        out = self.lab.run(ns, argv, timeout=self.args.duration + 30)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
        fig.errors += sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        fig.errors += sum(
            int(x) for x in re.findall(r"(?:connect|write|timeout) (\d+)", out)
        )  # read errors are how a closing server looks to wrk
        if close:
            fig.cps = rps
            return
        p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert p99 is not None, out
        fig.rps, fig.p99_ms = rps, float(p99[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99[2]]

    def iperf(self, ns: str, host: str, port: int, fig: Figures) -> None:
        out = self.lab.run(
            ns,
            ["iperf3", "-c", host, "-p", str(port), "-t", str(self.args.duration), "-J"],
            timeout=self.args.duration + 30,
        )
        fig.bulk_mbit = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6

    def listening(self, ns: str, port: int) -> bool:
        return bool(self.lab.run(ns, ["ss", "-Hltn", f"sport = :{port}"]).strip())

    def up(self) -> dict[str, str]:
        """Veths, the tunnel, and the backend; the rendered haproxy.cfg, ready to start."""
        lab, c, g, n, a = self.lab, self.c, self.g, self.n, self.args
        lab.veth(c, "eth0", f"{P.CLIENT}/24", g, "pub0", f"{P.PUBLIC}/24")
        lab.veth(n, "eth0", f"{P.UNDERLAY_NODE}/24", g, "und0", f"{P.UNDERLAY_GW}/24")
        lab.veth(c, "direct0", f"{P.DIRECT_CLIENT}/30", n, "direct0", f"{P.DIRECT_NODE}/30")
        lab.run(n, ["ip", "route", "add", "default", "via", P.UNDERLAY_GW])
        gw_key, gw_pub = lab.keypair("gateway")
        node_key, node_pub = lab.keypair("node")
        files = compile_gateway(lab.workdir, {P.NODE: node_pub, f"gateway:{P.GATEWAY}": gw_pub})
        gw_quick = files[f"gateways/{P.GATEWAY}/wg-quick/tunnel.conf"]
        node_quick = files[f"nodes/{P.NODE}/wg-quick/gw.{P.GATEWAY}.conf"]
        mtu = a.mtu or int(wg_quick(gw_quick, "MTU"))
        gw_if, node_if = lab.name("gw"), lab.name("nw")  # distinct: the UAPI sockets are shared
        lab.wireguard(g, gw_if, files[f"gateways/{P.GATEWAY}/wireguard/tunnel.conf"], gw_key,
                      mtu, a.pin_wg)  # fmt: skip
        lab.run(g, ["ip", "addr", "add", wg_quick(gw_quick, "Address"), "dev", gw_if])
        lab.wireguard(n, node_if, files[f"nodes/{P.NODE}/wireguard/gw.{P.GATEWAY}.conf"],
                      node_key, mtu, a.pin_wg)  # fmt: skip
        self.tunnel = wg_quick(node_quick, "Address").split("/")[0]
        gw_tunnel = wg_quick(gw_quick, "Address").split("/")[0]
        lab.run(n, ["ip", "addr", "add", f"{self.tunnel}/32", "dev", node_if])
        lab.run(n, ["ip", "route", "add", f"{gw_tunnel}/32", "dev", node_if])
        ping = ["ping", "-c", "1", "-W", "1", self.tunnel]
        wait_for(lambda: _ok(lab, g, ping), "the tunnel's first handshake", timeout=15)
        lab.hosts(c, {P.HOST: P.PUBLIC})
        lab.hosts(g, {P.HOST: self.tunnel})
        conf = os.path.join(lab.workdir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write(P.nginx_conf(lab.workdir, workers=2))
        os.makedirs(os.path.join(lab.workdir, "nginx-temp"), exist_ok=True)
        nginx = lab.start(n, ["nginx", "-e", f"{lab.workdir}/nginx-error.log", "-c", conf,
                              "-g", "daemon off;"], "nginx")  # fmt: skip
        iperf = lab.start(n, ["iperf3", "-s", "-p", str(P.IPERF)], "iperf3")
        wait_for(lambda: self.listening(n, 443) and self.listening(n, P.IPERF), "nginx and iperf3",
                 nginx, lab)  # fmt: skip
        lab.alive(iperf)
        return files

    def haproxy(self, cfg: str, label: str) -> Any:
        path = os.path.join(self.lab.workdir, f"{label}.cfg")
        cfg = re.sub(r"stats socket \S+", f"stats socket {self.lab.workdir}/{label}.sock", cfg)
        # HAProxy wants 2 descriptors a connection (and a pipe per 4 when splicing) and refuses
        # to start short of them; a container may cap them below what the rendered maxconn
        # needs (systemd grants it on a real gateway).
        _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
        fit = (nofile - 200) * 2 // 5
        cfg = re.sub(
            r"^(    maxconn) (\d+)$", lambda m: f"{m[1]} {min(int(m[2]), fit)}", cfg, flags=re.M
        )
        if self.args.nbthread:
            cfg = re.sub(r"^    nbthread \d+\n", "", cfg, flags=re.M)
            cfg = cfg.replace("global\n", f"global\n    nbthread {self.args.nbthread}\n", 1)
        for section, lines in (
            ("global", self.args.global_line),
            ("defaults", self.args.defaults_line),
        ):
            cfg = cfg.replace(
                f"\n{section}\n", "".join([f"\n{section}\n", *(f"    {x}\n" for x in lines)]), 1
            )
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(cfg)
        proc = self.lab.start(
            self.g, ["haproxy", "-db", "-f", path], label, cpus=self.args.pin_haproxy
        )
        wait_for(lambda: self.listening(self.g, 8080), label, proc, self.lab)
        curl = ["curl", "-sf", "-o", "/dev/null", f"http://{P.HOST}/"]
        wait_for(lambda: _ok(self.lab, self.c, curl), f"{label} to answer", proc, self.lab)
        return proc

    def measure(self, ns: str, url: str, fig: Figures) -> Figures:
        self.wrk(ns, url, False, fig)
        self.wrk(ns, url, True, fig)
        return fig

    def run(self, files: dict[str, str]) -> list[dict[str, Figures]]:
        """Every path, --rounds times over."""
        a = self.args
        print(f"lab {self.lab.prefix}: wrk -t{a.wrk_threads} -c{a.connections}, "
              f"{a.duration}s a run, {a.rounds} round(s)", file=sys.stderr)  # fmt: skip
        return [self.one_round(files) for _ in range(a.rounds)]

    def one_round(self, files: dict[str, str]) -> dict[str, Figures]:
        c, g = self.c, self.g
        out: dict[str, Figures] = {}
        tunnel = self.measure(g, f"http://{self.tunnel}/", Figures())
        self.iperf(g, self.tunnel, P.IPERF, tunnel)
        out["tunnel"] = tunnel
        out["tunnel https"] = self.measure(g, f"https://{P.HOST}/", Figures())
        cfg = files[f"gateways/{P.GATEWAY}/haproxy.cfg"]
        proc = self.haproxy(cfg, "haproxy")
        out["gateway http"] = self.measure(c, f"http://{P.HOST}/", Figures())
        out["gateway tcp"] = self.measure(c, f"http://{P.PUBLIC}:8080/", Figures())
        self.iperf(c, P.PUBLIC, P.IPERF, out["gateway tcp"])
        out["gateway sni"] = self.measure(c, f"https://{P.HOST}/", Figures())
        self.lab.stop(proc)
        out["ssh -R"] = self.ssh_r()
        if not self.args.quick:
            plain = cfg.replace(f" {self.tunnel}:", f" {P.UNDERLAY_NODE}:")
            proc = self.haproxy(plain, "haproxy-plain")
            out["haproxy http, no tunnel"] = self.measure(c, f"http://{P.HOST}/", Figures())
            out["haproxy tcp, no tunnel"] = self.measure(c, f"http://{P.PUBLIC}:8080/", Figures())
            self.iperf(c, P.PUBLIC, P.IPERF, out["haproxy tcp, no tunnel"])
            self.lab.stop(proc)
            out["direct"] = self.measure(c, f"http://{P.DIRECT_NODE}/", Figures())
            self.iperf(c, P.DIRECT_NODE, P.IPERF, out["direct"])
        return out

    def ssh_r(self) -> Figures:
        lab, c, g = self.lab, self.c, self.g
        conf, ssh = P.sshd_conf(lab.workdir)
        path = os.path.join(lab.workdir, "sshd_config")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(conf)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        sshd = lab.start(
            g, [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", path], "sshd"
        )
        wait_for(lambda: self.listening(g, P.SSH_PORT), "sshd", sshd, lab)
        client = lab.start(self.n, ssh, "ssh")
        wait_for(lambda: self.listening(g, P.SSH_BULK), "ssh -R's ports", client, lab)
        fig = self.measure(c, f"http://{P.PUBLIC}:{P.SSH_HTTP}/", Figures())
        self.iperf(c, P.PUBLIC, P.SSH_BULK, fig)
        lab.stop(client)
        lab.stop(sshd)
        return fig


def _ok(lab: Lab, ns: str, argv: list[str]) -> bool:
    try:
        lab.run(ns, argv, timeout=5)
    except LabError:
        return False
    return True


def _mid(xs: list[float]) -> float | None:
    xs = sorted(xs)
    return None if not xs else (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


def _median(runs: list[Figures]) -> Figures:
    def mid(name: str) -> float | None:
        x = _mid([x for r in runs if (x := getattr(r, name)) is not None])
        return None if x is None else round(x, 2)

    return Figures(
        mid("rps"), mid("p99_ms"), mid("cps"), mid("bulk_mbit"), sum(r.errors for r in runs)
    )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def ceiling_of(path: str) -> str:
    return "tunnel https" if path in ("tunnel https", "gateway sni") else "tunnel"


def ratio(rounds: list[dict[str, Figures]], path: str, attr: str) -> float | None:
    """The median over the rounds of each round's ratio to its own ceiling: the load other
    programs put on the shared cores drifts between rounds, a ceiling and the paths measured
    beside it share most of it."""
    pairs = [(getattr(r[path], attr), getattr(r[ceiling_of(path)], attr)) for r in rounds]
    return _mid([a / b for a, b in pairs if a is not None and b])


def verdicts(rounds: list[dict[str, Figures]]) -> dict[str, dict[str, Any]]:
    """Each target: the ratio to the ceiling, the target, and met or not."""
    ssh_p99 = _median([r["ssh -R"] for r in rounds]).p99_ms
    out: dict[str, dict[str, Any]] = {}
    for mode in ("http", "tcp", "sni"):
        path = f"gateway {mode}"
        ka, p99 = ratio(rounds, path, "rps"), _median([r[path] for r in rounds]).p99_ms
        p99_ok = p99 is not None and ssh_p99 is not None and p99 < ssh_p99
        out[f"keep-alive {mode}"] = {
            "ratio": _round(ka), "target": KEEPALIVE_TARGET, "p99_ms": p99, "ssh_p99_ms": ssh_p99,
            "met": ka is not None and ka >= KEEPALIVE_TARGET and p99_ok,
        }  # fmt: skip
        cps, target = ratio(rounds, path, "cps"), NEWCONN_TARGET[mode]
        out[f"new connections {mode}"] = {
            "ratio": _round(cps),
            "target": target,
            "met": cps is not None and cps >= target,
        }
    bulk = ratio(rounds, "gateway tcp", "bulk_mbit")
    out["bulk tcp"] = {
        "ratio": _round(bulk),
        "target": BULK_TARGET,
        "met": bulk is not None and bulk >= BULK_TARGET,
    }
    return out


def _num(x: float | None, fmt: str) -> str:
    return format(x, fmt) if x is not None else "-".rjust(int(re.sub(r"\..*|\D", "", fmt) or 0))


def report(rounds: list[dict[str, Figures]], args: argparse.Namespace) -> None:
    f = {path: _median([r[path] for r in rounds]) for path in rounds[0]}
    print(f"{'path':<26} {'keep-alive/s':>12} {'x tun':>6} {'p99 ms':>7} {'new conn/s':>10} "
          f"{'x tun':>6} {'bulk Mbit/s':>11} {'x tun':>6} {'errors':>6}")  # fmt: skip
    for name, x in f.items():
        cells = [
            _num(x.rps, "12.0f"),
            _num(ratio(rounds, name, "rps"), "6.2f"),
            _num(x.p99_ms, "7.2f"),
            _num(x.cps, "10.0f"),
            _num(ratio(rounds, name, "cps"), "6.2f"),
            _num(x.bulk_mbit, "11.0f"),
            _num(ratio(rounds, name, "bulk_mbit"), "6.2f"),
        ]
        print(f"{name:<26} {' '.join(cells)} {x.errors:>6}")
    ssh, ours = f["ssh -R"], f["gateway tcp"]
    pairs = [
        f"{label} {_num(getattr(ssh, k), fmt)} vs {_num(getattr(ours, k), fmt)}"
        for label, k, fmt in COLUMNS
    ]
    print("ssh -R vs the gateway in tcp mode: " + ", ".join(pairs))
    checks = verdicts(rounds)
    for name, v in checks.items():
        extra = (
            f", p99 {v['p99_ms']:.2f} ms vs ssh -R's {v['ssh_p99_ms']:.2f}" if "p99_ms" in v else ""
        )
        print(f"  {name}: {_num(v['ratio'], '.2f')}x the tunnel (target {v['target']}x){extra}: "
              f"{'met' if v['met'] else 'NOT met'}")  # fmt: skip
    print(json.dumps({
        "bench": "gateway_vs_ssh", "duration_s": args.duration, "rounds": args.rounds,
        "wrk_connections": args.connections,
        "paths": {k: asdict(v) for k, v in f.items()},
        "ratios": {k: {a: _round(ratio(rounds, k, a)) for _, a, _ in COLUMNS} for k in f},
        "targets": checks, "all_met": all(v["met"] for v in checks.values()),
    }, sort_keys=True))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk or iperf3 run")
    parser.add_argument("--quick", action="store_true", help="skip the direct and no-tunnel paths")
    parser.add_argument("--rounds", type=int, default=2, help="the median of this many rounds")
    parser.add_argument("--connections", type=int, default=50, help="wrk's open connections")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--nbthread", type=int, help="override HAProxy's nbthread (experiments)")
    parser.add_argument("--mtu", type=int, help="the tunnel's MTU (default: the rendered one)")
    parser.add_argument(
        "--global-line", action="append", default=[], help="add to HAProxy's global"
    )
    parser.add_argument("--defaults-line", action="append", default=[], help="add to its defaults")
    # Pinned, HAProxy runs one thread (its default is one per CPU it may use) and stays off
    # the core both wireguard-go share; "" leaves a process to the scheduler.
    parser.add_argument("--pin-haproxy", default="0", help="taskset CPU list for HAProxy")
    parser.add_argument("--pin-wg", default="1", help="taskset CPU list for both wireguard-go")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("gateway_vs_ssh needs root (network namespaces)")
    if missing := missing_tools():
        sys.exit(f"gateway_vs_ssh needs {', '.join(missing)}")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # SIGTERM unwinds like Ctrl-C, through the lab's cleanup.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        os.chmod(tmp, 0o755)
        lab = Lab(tmp)
        try:
            bench = Bench(lab, args)
            rounds = bench.run(bench.up())
        except LabError as err:
            sys.exit(f"gateway_vs_ssh: {err}")
        finally:
            lab.close()
    report(rounds, args)


if __name__ == "__main__":
    main()
