"""Bounded subprocess calls: every command has a timeout and a readable error."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence

DEFAULT_TIMEOUT = 10.0


class LabError(Exception):
    """The lab could not be built, used or torn down."""


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv; raise LabError on timeout, or on a non-zero exit when check."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:g}s: {shlex.join(argv)}") from exc
    except OSError as exc:
        raise LabError(f"cannot run {shlex.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise LabError(f"{shlex.join(argv)} failed (exit {done.returncode}): {detail}")
    return done


def ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def ip_batch(lines: Sequence[str], *, ns: str | None = None, timeout: float = 20.0) -> None:
    """Run iproute2 commands in one process (`ip -batch -`), stopping at the first error."""
    if not lines:
        return
    argv = ["ip"] if ns is None else ["ip", "-n", ns]
    run([*argv, "-batch", "-"], input="\n".join(lines) + "\n", timeout=timeout)
