"""Where a command writes: data to `out`, summaries, progress and notes to `err`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Console:
    out: TextIO
    err: TextIO
    # path -> text of every spec the command read, so that main can show an error's line
    sources: dict[str, str] = field(default_factory=dict)
