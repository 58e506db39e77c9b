"""The far sides of enterprise links in the lab: one maker per kind, in one list.

On a real machine an enterprise link ends somewhere Hercules does not run
(a data centre's VXLAN switch, an IPsec gateway) and starts at what exists
before Hercules (a bridge's ports, a VLAN's parent, the node's charon). The
lab stands in for both. Each maker in MAKERS turns the IR into `FarSide`s,
pure descriptions (lab/far_side.py) computed from the IR, the lab's Topology
and its node directory (every node's --state-dir, where a far side's daemons
keep their configs, sockets and logs) wherever they are needed (the harness,
the state file, `lab plan|apply`):

  namespaces()  what it creates, in order: recorded in the state file after the
                underlay's (statefile.record), so `lab down` deletes them
  build(created, daemons)  make them as the spec says now, before the nodes'
                overlays are applied (`lab up`, `lab apply`: a VXLAN's far end
                afresh, an IPsec link's when it is new or changed); every namespace
                goes into `created` and every process it starts into `daemons` as
                soon as it exists, so the caller's teardown removes it
  prepare()     make what a node's plan needs to find (a port the spec names,
                an IPsec link's secret), idempotent: before a node is planned
  join()        what needs the node's applied links (a host on its bridge),
                idempotent: after the nodes are applied
  endpoints()   what `lab check` pings: (name, network, namespace, addresses,
                node) rows, crossed within each network like the overlay's; each
                is also a `lab exec` name
  targets()     the other names `lab exec` knows (name -> namespace)

The VXLAN, bridge and VLAN side is lab/enterprise_l2.py, the IPsec side
lab/enterprise_ipsec.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hercc import ir
from hercc.lab.daemons import Daemon
from hercc.lab.enterprise_ipsec import ipsec_far_sides
from hercc.lab.enterprise_l2 import l2_far_sides
from hercc.lab.far_side import FarSide, Maker
from hercc.lab.topology import Topology

__all__ = ["MAKERS", "build_all", "far_namespaces", "far_sides", "join_all", "prepare_all"]

# one per kind of link
MAKERS: tuple[Maker, ...] = (ipsec_far_sides, l2_far_sides)


def far_sides(model: ir.IR, t: Topology, directory: str | Path) -> tuple[FarSide, ...]:
    """Every far side of `model` in its lab topology `t`, with the lab's node directory."""
    return tuple(side for make in MAKERS for side in make(model, t, Path(directory)))


def far_namespaces(sides: Sequence[FarSide]) -> tuple[str, ...]:
    return tuple(ns for side in sides for ns in side.namespaces())


def prepare_all(sides: Sequence[FarSide]) -> None:
    """Before the nodes are planned or applied: what their plans must find."""
    for side in sides:
        side.prepare()


def join_all(sides: Sequence[FarSide]) -> None:
    """After the nodes are applied: what hangs off their links."""
    for side in sides:
        side.join()


def build_all(sides: Sequence[FarSide], created: list[str], daemons: list[Daemon]) -> None:
    """Before the nodes are applied (`lab up`, `lab apply`): as the spec says now."""
    for side in sides:
        side.build(created, daemons)
