"""Namespaces, veths, WireGuard and processes for bench/gateway_vs_ssh.py.

Everything is named with one per-run prefix and recorded as it is made, so
close() removes exactly that: the processes it started (by PID, in reverse
order), the namespaces, and the /etc/netns/NS files `ip netns exec` binds over
/etc (the per-namespace hosts files that give wrk its SNI name).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class LabError(RuntimeError):
    pass


@dataclass
class Lab:
    workdir: str
    prefix: str = field(default_factory=lambda: f"hb{secrets.token_hex(2)}")
    namespaces: list[str] = field(default_factory=list)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def name(self, role: str) -> str:
        return f"{self.prefix}{role}"

    def netns(self, role: str) -> str:
        ns = self.name(role)
        _run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        self.run(ns, ["ip", "link", "set", "lo", "up"])
        return ns

    def run(self, ns: str, argv: list[str], timeout: float = 60) -> str:
        return _run(["ip", "netns", "exec", ns, *argv], timeout)

    def start(self, ns: str, argv: list[str], label: str, env: dict[str, str] | None = None,
              cpus: str | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        """A child in NS (`ip netns exec` execs it: the PID is the program's)."""
        log = open(os.path.join(self.workdir, f"{label}.log"), "wb")  # noqa: SIM115
        pin = ["taskset", "-c", cpus] if cpus else []
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *pin, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()
        self.procs.append((label, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs = [(label, p) for label, p in self.procs if p is not proc]

    def alive(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            label = next(label for label, p in self.procs if p is proc)
            with open(os.path.join(self.workdir, f"{label}.log"), "rb") as fh:
                tail = fh.read()[-1500:].decode(errors="replace")
            raise LabError(f"{label} exited ({proc.returncode}):\n{tail}")

    def veth(self, a: str, a_if: str, a_addr: str, b: str, b_if: str, b_addr: str) -> None:
        _run(["ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", b_if, "netns", b])
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            self.run(ns, ["ip", "addr", "add", addr, "dev", ifname])
            self.run(ns, ["ip", "link", "set", ifname, "up"])

    def hosts(self, ns: str, entries: dict[str, str]) -> None:
        """/etc/hosts as the programs in NS see it (ip netns exec bind-mounts it)."""
        os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
        lines = ["127.0.0.1 localhost", *(f"{addr} {host}" for host, addr in entries.items())]
        with open(f"/etc/netns/{ns}/hosts", "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def keypair(self, label: str) -> tuple[str, str]:
        """A fresh WireGuard private key in a file (`wg genkey`), and its public key."""
        key = os.path.join(self.workdir, f"{label}.key")
        private = _run(["wg", "genkey"])
        with open(key, "w", encoding="utf-8") as fh:
            fh.write(private)
        os.chmod(key, 0o600)
        return key, _run(["wg", "pubkey"], stdin=private).strip()

    def wireguard(self, ns: str, ifname: str, setconf: str, key: str, mtu: int,
                  cpus: str | None) -> None:  # fmt: skip
        """A wireguard-go interface in NS, configured from a `wg setconf` file, then up."""
        proc = self.start(ns, ["wireguard-go", "-f", ifname], f"wg-{ifname}",
                          {"WG_PROCESS_FOREGROUND": "1"}, cpus)  # fmt: skip
        sock = f"/var/run/wireguard/{ifname}.sock"
        wait_for(lambda: os.path.exists(sock), f"{ifname}'s UAPI socket", proc, self)
        conf = os.path.join(self.workdir, f"{ifname}.conf")
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write(setconf)
        self.run(ns, ["wg", "setconf", ifname, conf])
        self.run(ns, ["wg", "set", ifname, "private-key", key])
        self.run(ns, ["ip", "link", "set", ifname, "mtu", str(mtu), "up"])

    def close(self) -> None:
        for _, proc in reversed(list(self.procs)):
            self.stop(proc)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        self.namespaces.clear()


def wait_for(ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None,
             lab: Lab | None = None, timeout: float = 10) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and lab is not None:
            lab.alive(proc)
        if ready():
            return
        time.sleep(0.05)
    raise LabError(f"timed out waiting for {what}")


def _run(argv: list[str], timeout: float = 60, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout
