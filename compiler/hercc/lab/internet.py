"""The internet namespace's /etc: the lab's DNS server as its resolver, the lab CA as its trust.

`ip netns exec NS` (which `hercc lab exec` and the lab's own commands use)
bind-mounts every entry of /etc/netns/NS/ over the same name in /etc, in a
mount namespace of the command's own. So /etc/netns/<p>-i/resolv.conf
points the namespace's resolver at the lab's named, and
/etc/netns/<p>-i/ssl/certs/ca-certificates.crt (the bundle curl and
OpenSSL read on Debian) holds the lab CA alone: `curl https://NAME/` in the
namespace trusts the workloads' test certificates as a browser trusts a
public CA, and nothing else. The machine's own /etc is not touched.
`remove_etc` deletes the directory at `down`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hercc.lab.public import Internet
from hercc.sysio.files import make_dirs, write_atomic

ETC_NETNS = Path("/etc/netns")
CA_BUNDLE = Path("ssl/certs/ca-certificates.crt")


def etc_dir(ns: str) -> Path:
    return ETC_NETNS / ns


def write_etc(internet: Internet, ca: Path | None) -> Path:
    """resolv.conf and (with `ca`) the CA bundle for the internet namespace; its /etc/netns dir."""
    top = etc_dir(internet.ns)
    make_dirs(top, 0o755)
    resolv = f"nameserver {internet.address}\nnameserver {internet.address6}\noptions timeout:1\n"
    write_atomic(top / "resolv.conf", resolv, 0o644)
    if ca is not None:
        bundle = top / CA_BUNDLE
        make_dirs(bundle.parent, 0o755)
        write_atomic(bundle, ca.read_text(encoding="ascii"), 0o644)
    return top


def remove_etc(ns: str) -> None:
    """Remove /etc/netns/<ns> (nothing if it is not there)."""
    shutil.rmtree(etc_dir(ns), ignore_errors=True)
