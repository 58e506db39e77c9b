"""A live lab: a compiled spec brought up as network namespaces on this machine.

`Lab(ir)` plans names and addresses (topology.py), then creates an underlay
(one namespace per node, a bridge, a NAT router per nat node), one namespace
per (node, network) holding that network's WireGuard interface (wireguard-go),
and one namespace per workload. `down()` removes exactly what it created.
Needs root, iproute2, nftables, wireguard-go and wg.

For a spec file:

    compiled, keys = compile_for_lab("examples/reference.herc")
    with Lab(compiled.ir, keys=keys) as lab:
        lab.ping("web", "10.20.9.20")

The configs are the real backend's (hercc.backends.wireguard).
"""

from __future__ import annotations

from hercc.lab.harness import Lab, missing_requirements
from hercc.lab.keys import GeneratedKeys, KeySource, with_keys
from hercc.lab.mesh import naive_mesh
from hercc.lab.run import LabError
from hercc.lab.spec import compile_for_lab
from hercc.lab.topology import Plan, new_prefix, plan
from hercc.lab.wgconf import BackendRenderer, backend_render, render_setconf, strip_endpoints

__all__ = [
    "BackendRenderer",
    "GeneratedKeys",
    "KeySource",
    "Lab",
    "LabError",
    "Plan",
    "backend_render",
    "compile_for_lab",
    "missing_requirements",
    "naive_mesh",
    "new_prefix",
    "plan",
    "render_setconf",
    "strip_endpoints",
    "with_keys",
]
