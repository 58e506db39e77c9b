"""What a far side of an enterprise link in the lab is: `FarSide` and `FarEndpoint`.

The list of makers, and what each method is for, is lab/far_sides.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hercc import ir
from hercc.lab.daemons import Daemon
from hercc.lab.topology import Topology

__all__ = ["FarEndpoint", "FarSide", "Maker"]


@dataclass(frozen=True)
class FarEndpoint:
    """A source and destination of `lab check` at one end of an enterprise link."""

    name: str
    network: str  # what `check` groups by: the link, e.g. "vxlan hq/dc1"
    ns: str
    addresses: tuple[str, ...]
    node: str = ""  # the lab node at this end ("": the far end)


class FarSide(Protocol):
    def namespaces(self) -> tuple[str, ...]: ...

    def build(self, created: list[str], daemons: list[Daemon]) -> None: ...

    def prepare(self) -> None: ...

    def join(self) -> None: ...

    def endpoints(self) -> tuple[FarEndpoint, ...]: ...

    def targets(self) -> dict[str, str]: ...


# (IR, the lab's topology of it, the lab's node directory) -> the far sides of one kind of link
Maker = Callable[[ir.IR, Topology, Path], Sequence[FarSide]]
