"""Live eBPF attachments of a namespace as `bpf` Resources (hercc.resources).

`Bpf` is the boundary: the attachments of a namespace (TC ingress filters
from `tc -j filter show dev IF ingress`, XDP programs and their mode from
`ip -j -d link show`), the objects a node pinned there (state/bpf_pins.py),
and for native XDP on a veth its other end (`ip -j netns list-id`, then that
namespace's links) and that end's offloads (`ethtool --json -k`). `BpfCli`
is the real one.

Ownership: an attachment is ours when its program's id is one of the
programs pinned under the node's directory for that namespace
(dataplane/attach.py pin_root); it then reads as

  bpf  "<NS>/<IF>/<hook>": program (the pinned entry point's name), digest
       (from the pinned object's directory name), flow_entries and
       route_entries (max_entries of its pinned `flows` and `routes4` maps;
       flow_entries None without a flow map)

Any other program on a hook is foreign, by the same id: Hercules never
detaches it, and refuses to attach where it sits (plan/node_service.conflicts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hercc.dataplane.attach import BPFFS, ETHTOOL_JSON_FEATURES, HOOK_TC, HOOK_XDP, pin_root
from hercc.dataplane.maps import XDP_GENERIC, XDP_NATIVE
from hercc.resources.ids import BpfId, format_id
from hercc.resources.model import FORCES_NEW, Resource
from hercc.state.bpf_pins import PinnedObject, pinned_objects
from hercc.state.errors import StateError
from hercc.sysio.process import run

__all__ = [
    "Attachment",
    "Bpf",
    "BpfCli",
    "attachments_of",
    "filters_of",
    "offloads_of",
    "read_bpf",
    "xdp_of",
]


@dataclass(frozen=True)
class Attachment:
    """A program on a hook of an interface; TC filters also carry what deletes exactly them."""

    ifname: str
    hook: str  # HOOK_TC | HOOK_XDP
    prog_id: int
    pref: int | None = None
    handle: str | None = None
    mode: str | None = None  # XDP: XDP_NATIVE | XDP_GENERIC (or the kernel's number)


_XDP_MODES = {1: XDP_NATIVE, 2: XDP_GENERIC}  # iproute2's XDP_ATTACHED_DRV, _SKB


class Bpf(Protocol):
    def links(self, ns: str) -> str:
        """`ip -j -d link show` in `ns`."""
        ...

    def filters(self, ns: str, ifname: str) -> str:
        """`tc -j filter show dev IFNAME ingress` in `ns`."""
        ...

    def pinned(self, node: str, ns: str) -> list[PinnedObject]: ...

    def netns_ids(self, ns: str) -> str:
        """`ip -j netns list-id` in `ns`: the ids it knows other namespaces by."""
        ...

    def features(self, ns: str, ifname: str) -> str:
        """`ethtool --json -k IFNAME` in `ns`."""
        ...


def _json(text: str) -> list[dict[str, Any]]:
    data = json.loads(text) if text.strip() else []
    if not isinstance(data, list):
        raise StateError(f"unexpected JSON from ip/tc: {text[:80]!r}")
    return data


def xdp_of(links_json: str) -> tuple[list[str], list[Attachment]]:
    """The interface names in `ip -j -d link show`, and their XDP programs."""
    names, out = [], []
    for link in _json(links_json):
        names.append(link["ifname"])
        xdp = link.get("xdp", {})
        # one program: "prog"; several (generic and native at once): only "attached"
        progs = [xdp] if "prog" in xdp else xdp.get("attached", [])
        out += [
            Attachment(link["ifname"], HOOK_XDP, int(p["prog"]["id"]), mode=_mode(p.get("mode")))
            for p in progs
        ]
    return names, out


def _mode(number: object) -> str | None:
    return None if number is None else _XDP_MODES.get(int(str(number)), str(number))


def offloads_of(features_json: str) -> dict[str, str]:
    """The offload attributes (dataplane/attach.py) in `ethtool --json -k`'s output."""
    (features,) = _json(features_json)
    return {
        attr: "on" if features.get(name, {}).get("active") else "off"
        for attr, name in ETHTOOL_JSON_FEATURES.items()
    }


def peer_of(bpf: Bpf, ns: str, links: list[dict[str, Any]], ifname: str) -> str | None:
    """The other end of veth IFNAME in `ns`, as "NS/IF"; None when it is not found."""
    link = next((lk for lk in links if lk["ifname"] == ifname), {})
    index, nsid = link.get("link_index"), link.get("link_netnsid")
    if index is None:
        return None
    peer_ns: str | None = ns
    if nsid is not None:
        ids = {int(e["nsid"]): e.get("name") for e in _json(bpf.netns_ids(ns))}
        peer_ns = ids.get(int(nsid))
    if peer_ns is None:
        return None
    other = links if peer_ns == ns else _json(bpf.links(peer_ns))
    name = next((lk["ifname"] for lk in other if lk.get("ifindex") == index), None)
    return None if name is None else f"{peer_ns}/{name}"


def filters_of(ifname: str, filters_json: str) -> list[Attachment]:
    """The ingress filters of IFNAME that run a program (`tc -j filter show`); a filter of
    another kind counts as a foreign program too (prog_id 0)."""
    out = []
    for f in _json(filters_json):
        options = f.get("options")
        if options is None:
            continue  # the line that opens a pref's chain
        prog_id = int(options.get("prog", {}).get("id", 0))
        out.append(Attachment(ifname, HOOK_TC, prog_id, int(f["pref"]), options.get("handle")))
    return out


def attachments_of(bpf: Bpf, ns: str, links: str | None = None) -> list[Attachment]:
    """Every program attached at ingress or XDP in `ns` (`links`: its `ip -j -d link show`,
    read when not given)."""
    names, out = xdp_of(bpf.links(ns) if links is None else links)
    for ifname in names:
        out += filters_of(ifname, bpf.filters(ns, ifname))
    return out


class BpfCli:
    """`ip` and `tc` with JSON output, bounded; pins read on the bpffs at `bpffs`."""

    def __init__(self, bpffs: str = BPFFS, timeout: float = 10.0) -> None:
        self.bpffs = bpffs
        self.timeout = timeout

    def links(self, ns: str) -> str:
        argv = ["ip", "-n", ns, "-j", "-d", "link", "show"]
        return run(argv, timeout=self.timeout, error=StateError).stdout

    def filters(self, ns: str, ifname: str) -> str:
        argv = ["tc", "-n", ns, "-j", "filter", "show", "dev", ifname, "ingress"]
        return run(argv, timeout=self.timeout, error=StateError).stdout

    def pinned(self, node: str, ns: str) -> list[PinnedObject]:
        return pinned_objects(Path(pin_root(node, ns, self.bpffs)))

    def netns_ids(self, ns: str) -> str:
        argv = ["ip", "-n", ns, "-j", "netns", "list-id"]
        return run(argv, timeout=self.timeout, error=StateError).stdout

    def features(self, ns: str, ifname: str) -> str:
        argv = ["ethtool", "--json", "-k", ifname]
        return run(argv, netns=ns, timeout=self.timeout, error=StateError).stdout


def read_bpf(
    node: str, wanted: Iterable[str], pinned_in: Iterable[str], bpf: Bpf
) -> tuple[list[Resource], set[str]]:
    """Our attachments and the foreign ones (module docstring), in the namespaces `wanted`
    (where the plan attaches), and in those of `pinned_in` where the node pinned
    objects (where it may have attached before): a namespace with neither costs no
    `ip` or `tc` run."""
    ours: list[Resource] = []
    foreign: set[str] = set()
    wanted = set(wanted)
    for ns in sorted(wanted | set(pinned_in)):
        pinned = bpf.pinned(node, ns)
        if not pinned and ns not in wanted:
            continue
        owner = {pid: (obj, entry) for obj in pinned for entry, pid in obj.programs.items()}
        mine: dict[str, list[tuple[PinnedObject, str]]] = {}
        links = bpf.links(ns)
        modes: dict[str, tuple[str, str | None]] = {}
        for a in attachments_of(bpf, ns, links):
            rid = format_id(BpfId(ns, a.ifname, a.hook))
            if a.prog_id not in owner:
                foreign.add(rid)
            else:
                mine.setdefault(rid, []).append(owner[a.prog_id])
                modes[rid] = (a.ifname, a.mode)
        parsed = _json(links) if mine else []  # once for the namespace, not per attachment
        for rid, found in sorted(mine.items()):
            xdp, content = _xdp_attrs(bpf, ns, parsed, *modes[rid])
            ours.append(_resource(ns, rid, found, xdp, content))
    return ours, foreign


def _xdp_attrs(
    bpf: Bpf, ns: str, links: list[dict[str, Any]], ifname: str, mode: str | None
) -> tuple[dict[str, str | None], str | None]:
    """An XDP attachment's mode, and in native mode its veth's other end's offloads."""
    if mode is None:
        return {}, None
    if mode != XDP_NATIVE:
        return {"mode": mode}, None
    peer = peer_of(bpf, ns, links, ifname)
    if peer is None:
        return {"mode": mode, **dict.fromkeys(ETHTOOL_JSON_FEATURES)}, None
    peer_ns, peer_if = peer.split("/", 1)
    offloads = offloads_of(bpf.features(peer_ns, peer_if))
    return {"mode": mode, **offloads}, json.dumps({"peer": peer})


def _resource(
    ns: str,
    rid: str,
    found: list[tuple[PinnedObject, str]],
    xdp: dict[str, str | None],
    content: str | None,
) -> Resource:
    """One attachment of ours; several on one hook (a crash between attaching and
    recording cannot make them, but a hand can) read as a digest no plan has, so the
    plan replaces them with one."""
    obj, entry = found[0]
    return Resource(
        "bpf",
        rid,
        {
            "program": entry,
            "digest": obj.digest if len(found) == 1 else f"({len(found)} attached)",
            "flow_entries": obj.map_sizes.get("flows"),
            "route_entries": obj.map_sizes.get("routes4"),
            **xdp,
        },
        forces_new=FORCES_NEW["bpf"],
        parent=f"netns.{ns}",
        content=content,
    )
