"""A live lab: a compiled spec brought up as network namespaces on this machine.

`Lab(ir)` lays out names and addresses (topology.py), then creates an underlay
(one namespace per node, a bridge, a NAT router per nat node) and has every
node's overlay created by `hercc apply`'s code (nodes.py): one namespace per
(node, network) holding that network's WireGuard interface (wireguard-go),
and one namespace per workload. `down()` removes exactly what it created.
Needs root, iproute2, nftables, wireguard-go, wg and sysctl.

For a spec file:

    compiled, keys = compile_for_lab("examples/reference.herc")
    with Lab(compiled.ir, keys=keys) as lab:
        lab.ping("web", "10.20.9.20")

Every node's resources are its desired state (hercc.plan.desired), as for a
real node.
"""

from __future__ import annotations

from hercc.diagnostics import LabError
from hercc.lab.harness import Lab, missing_requirements
from hercc.lab.keys import GeneratedKeys, KeySource, with_keys
from hercc.lab.mesh import naive_mesh
from hercc.lab.spec import compile_for_lab
from hercc.lab.topology import Topology, new_prefix, topology_of

__all__ = [
    "GeneratedKeys",
    "KeySource",
    "Lab",
    "LabError",
    "Topology",
    "compile_for_lab",
    "missing_requirements",
    "naive_mesh",
    "new_prefix",
    "topology_of",
    "with_keys",
]
