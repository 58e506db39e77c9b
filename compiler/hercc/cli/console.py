"""Where a command writes: data to `out`, summaries, progress and notes to `err`."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TextIO


class Output(io.TextIOBase):
    """A command's stream that outlives its reader.

    When the reader goes away (`hercc ... | head -1`: a broken pipe), the rest
    is dropped instead of raised: no apply stops half-way because the output
    is no longer read. main then exits quietly with BROKEN_PIPE (`lost`).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.lost = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        """Whether the stream it wraps is a terminal (`flows top` redraws in place there)."""
        return self._stream.isatty()

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self.lost = True
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.lost = True


@dataclass
class Console:
    out: TextIO
    err: TextIO
    # path -> text of every spec the command read, so that main can show an error's line
    sources: dict[str, str] = field(default_factory=dict)
