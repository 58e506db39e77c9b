"""Helpers shared by the lab tests: run `hercc lab`, see what a lab left running."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from hercc.cli import main as cli


def lab(*argv: str) -> tuple[int, str, str]:
    """`hercc lab ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["lab", *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def netns_names() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_with(prefix: str) -> list[str]:
    """The namespaces of the lab whose names start with `prefix-`."""
    return [name for name in netns_names() if name.startswith(prefix + "-")]


def wireguard_go_of(prefix: str) -> list[str]:
    """The interfaces of the running wireguard-go processes of the lab `prefix`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if words and os.path.basename(words[0]) == "wireguard-go" and words[-1].startswith(prefix):
            found.append(words[-1])
    return found
