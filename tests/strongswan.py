"""A throwaway charon for tests: its own strongswan.conf, mount and network namespaces.

charon's pid file is fixed at /var/run/charon.pid, so it runs under `unshare
-m -n` with a private tmpfs on /run (../shared/PLATFORM.md); its VICI socket
and config live in the test's directory. The system's /etc/swanctl and
/etc/strongswan.conf are never read. Stopped by its PID. Given `netns`, it
runs in that (test-made) network namespace instead, installs its routes and
names its files after `name`, so several can talk to each other.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHARON = "/usr/lib/ipsec/charon"
PLUGINS = (
    "random nonce aes sha1 sha2 hmac md5 gmp gcm xcbc kdf openssl pem pkcs1 x509 pubkey "
    "kernel-libipsec kernel-netlink socket-default vici"
)
# Lines of `swanctl --load-all` that mean something was not loaded (it may still exit 0).
FAILED = re.compile(r"(loading|parsing) .* failed|no connections found|invalid", re.IGNORECASE)


def available() -> str | None:
    """None when charon and swanctl can run here, else why not."""
    for tool in ("swanctl", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(CHARON, os.X_OK):
        return "strongswan-charon is not installed"
    if os.geteuid() != 0:
        return "charon needs root for its namespaces"
    return None


@dataclass(frozen=True)
class Charon:
    conf: Path
    uri: str

    def swanctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, STRONGSWAN_CONF=str(self.conf))
        return subprocess.run(
            ["swanctl", *args, "--uri", self.uri],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )

    def load(self, swanctl_conf: Path) -> subprocess.CompletedProcess[str]:
        """`swanctl --load-all --file FILE`: connections not in FILE are unloaded."""
        return self.swanctl("--load-all", "--file", str(swanctl_conf))

    def connections(self) -> list[str]:
        done = self.swanctl("--list-conns")
        assert done.returncode == 0, done.stderr
        return re.findall(r"^(\S+): IKE", done.stdout, re.MULTILINE)


@contextmanager
def charon(tmp: Path, netns: str | None = None, name: str = "charon") -> Iterator[Charon]:
    socket = tmp / f"{name}.vici"
    conf = tmp / ("strongswan.conf" if netns is None else f"{name}.strongswan.conf")
    conf.write_text(
        "charon {\n"
        f"  load = {PLUGINS}\n"
        + ("  install_routes = no\n" if netns is None else "")
        + "  filelog {\n    stderr {\n      default = 1\n    }\n  }\n"
        f"  plugins {{\n    vici {{\n      socket = unix://{socket}\n    }}\n  }}\n"
        "}\n"
        "swanctl {\n  load = random openssl pem pkcs1 x509 pubkey\n}\n"
    )
    log = (tmp / f"{name}.log").open("w")
    env = dict(os.environ, STRONGSWAN_CONF=str(conf))
    start = ["sh", "-c", f"mount -t tmpfs tmpfs /run && exec {CHARON}"]
    where = ["unshare", "-m", "-n"] if netns is None else ["ip", "netns", "exec", netns, "unshare"]
    private = [] if netns is None else ["-m", "--propagation", "private"]
    proc = subprocess.Popen(
        [*where, *private, *start],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while not socket.exists():
            assert proc.poll() is None, (tmp / f"{name}.log").read_text()
            assert time.monotonic() < deadline, "charon opened no VICI socket"
            time.sleep(0.05)
        yield Charon(conf, f"unix://{socket}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
