"""The desired state of a node's dataplane: its eBPF programs' attachments (called by
plan/desired.py).

When the spec asks for a dataplane (dataplane/config.py `wanted`), per
interface of maps.json's data (dataplane/maps.py `node_maps`, under the
plan's Naming) in namespace NS:

  bpf  NS/IF/<hook> (hook "tc-ingress" or "xdp", dataplane/attach.py):
       program  the entry point maps.json names
       digest   of the program's C text with the node's generated header
                expanded, and of NS's routes (dataplane/attach.py `digest`)
       flow_entries, route_entries  the map sizes of the header (flow_entries
                None without accounting: the programs have no flow map then)
       mode     XDP only: "native" (driver mode) or "generic"
       peer_tx_checksum, peer_gro  native XDP only: "off" and "on", what
                native XDP on a veth needs of its other end (PLATFORM.md); the
                executor sets them, and restores the veth's defaults on delete
       content  JSON: hook, header and routes, what the executor compiles,
                pins and fills, and the veth's other end ("NS/IF") for
                native XDP (never compared)
       label    the fallback to TC (a WireGuard device under `fastpath xdp`),
                to generic XDP (and why), or TC behind XDP on a veth
       parent   the interface: replacing it replaces the attachment

Every attribute forces a replacement: a program is loaded whole, and a
changed header (a map size) or route set is a new program; an offload
someone turned back on is put right by attaching again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hercc import ir
from hercc.dataplane.attach import NATIVE_PEER_OFFLOADS, digest, hook_id
from hercc.dataplane.config import header_text, node_config, wanted
from hercc.dataplane.maps import KIND_VETH, XDP_NATIVE, node_maps
from hercc.dataplane.program import PROGRAMS, SOURCE_DIR, program_text
from hercc.diagnostics import OperationError
from hercc.resources.ids import BpfId, InterfaceId, format_id
from hercc.resources.model import FORCES_NEW, Resource
from hercc.resources.naming import Naming

__all__ = ["dataplane_resources"]


def _read_source(name: str) -> str:
    try:
        return (SOURCE_DIR / name).read_text(encoding="utf-8")
    except OSError as exc:
        raise OperationError(f"dataplane source {SOURCE_DIR / name}: {exc.strerror}") from None


def _parent(ns: str, iface: dict[str, Any]) -> str:
    kind = "veth" if iface["kind"] == KIND_VETH else "wireguard"  # a gateway tunnel's too
    return f"{kind}.{format_id(InterfaceId(ns, iface['name']))}"


def _label(iface: dict[str, Any]) -> str | None:
    if "behind_xdp" in iface:
        return f"TC behind XDP: {iface['behind_xdp']}"
    if "fallback" in iface:
        to = "TC" if iface["hook"] == "tc" else "generic XDP"
        return f"fallback to {to}: {iface['fallback']}"
    return None


def _xdp(iface: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """An XDP attachment's mode, and for native mode what it needs of the veth's other end."""
    if iface["hook"] != "xdp":
        return {}
    if iface["xdp_mode"] != XDP_NATIVE:
        return {"mode": iface["xdp_mode"]}
    content["peer"] = iface["peer"]
    return {"mode": XDP_NATIVE, **NATIVE_PEER_OFFLOADS}


def dataplane_resources(model: ir.IR, node: ir.Node, naming: Naming) -> Iterator[Resource]:
    """The `bpf` resources of `node` (the module docstring); none without a dataplane."""
    if not wanted(model):
        return
    maps = node_maps(model, node, naming)
    config = node_config(model, maps)
    header = header_text(config)
    texts = {hook: program_text(p, header, _read_source) for hook, p in PROGRAMS.items()}
    for ns, data in sorted(maps["namespaces"].items()):
        routes = data["routes"]
        for iface in data["interfaces"]:
            hook = iface["hook"]
            content: dict[str, Any] = {"hook": hook, "header": header, "routes": routes}
            xdp = _xdp(iface, content)
            yield Resource(
                "bpf",
                format_id(BpfId(ns, iface["name"], hook_id(hook))),
                {
                    "program": iface["program"],
                    "digest": digest(texts[hook], routes),
                    "flow_entries": config.flow_entries if config.accounting else None,
                    "route_entries": config.route_entries,
                    **xdp,
                },
                forces_new=FORCES_NEW["bpf"],
                parent=_parent(ns, iface),
                label=_label(iface),
                content=json.dumps(content, sort_keys=True),
            )
