"""Subprocesses: one bounded runner, an interactive runner, and detached starts.

Every failure raises the error the caller chooses (`error=`: a HerccError
class, or a function of the message), with one line that names the command:

    cannot run `CMD`: STRERROR           the binary is missing or not executable
    `CMD` timed out after T s
    `CMD` failed: exit N[: STDERR]       STDERR's lines joined by "; "
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path

from hercc.diagnostics import HerccError

ErrorFactory = Callable[[str], HerccError]


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """argv run inside network namespace `netns` (`ip netns exec`), or as is."""
    return [*(["ip", "netns", "exec", netns] if netns else []), *argv]


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    error: ErrorFactory,
    input: str | None = None,
    netns: str | None = None,
    check: bool = True,
    ok: Container[int] = (0,),
) -> subprocess.CompletedProcess[str]:
    """Run argv with its output captured (text); raise `error` on a timeout, a missing
    binary, or (when `check`) an exit status not in `ok`."""
    full = netns_argv(netns, argv)
    cmd = shlex.join(full)
    try:
        done = subprocess.run(
            full, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise error(f"`{cmd}` timed out after {timeout:g} s") from None
    except OSError as exc:
        raise error(f"cannot run `{cmd}`: {exc.strerror or exc}") from None
    if check and done.returncode not in ok:
        detail = "; ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        raise error(f"`{cmd}` failed: exit {done.returncode}" + (f": {detail}" if detail else ""))
    return done


def run_attached(argv: Sequence[str], *, error: ErrorFactory, netns: str | None = None) -> int:
    """Run argv with this process's stdin, stdout and stderr, unbounded (the user is at
    the keyboard); its exit status (negative: killed by that signal)."""
    full = netns_argv(netns, argv)
    try:
        return subprocess.run(full, check=False).returncode
    except OSError as exc:
        raise error(f"cannot run `{shlex.join(full)}`: {exc.strerror or exc}") from None


def start(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    error: ErrorFactory,
) -> subprocess.Popen[bytes]:
    """Start a long-running process in its own session, so that it outlives this one:
    stdin from /dev/null, stdout and stderr to `log` (its directory made 0700)."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with log.open("wb") as out:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
    except OSError as exc:
        raise error(f"cannot start `{shlex.join(argv)}`: {exc.strerror or exc}") from None
