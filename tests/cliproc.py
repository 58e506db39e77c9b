"""Run hercc as a user does: `python -m hercc ...` in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hercc(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The finished process; a hang fails the test through TimeoutExpired."""
    return subprocess.run(
        [sys.executable, "-m", "hercc", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
