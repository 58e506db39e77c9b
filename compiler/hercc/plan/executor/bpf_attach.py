"""The executor's bpf kind: a dataplane program attached at a hook of an interface.

What it loads comes in the desired resource's `content` (JSON: hook,
generated header, the namespace's routes; resources/model.py), never
compared, kept in saved plans. Names and paths are dataplane/attach.py's.

  create   the object of the namespace, hook and digest is compiled with BCC
           and pinned (programs and maps) unless it is pinned already: every
           attachment of the namespace and hook shares it, and its maps. Its
           route tries are (re)filled with the ifindexes of now (an interface
           made again has a new one). Then the entry point is attached: TC,
           a direct-action filter on the clsact ingress (clsact made when
           missing, and left behind: other filters may use it); XDP, generic.
  delete   detaches exactly the programs on that hook of IF that are pinned by
           this node (by program id; a foreign one stays), then unpins the
           object when no program of it is attached in the namespace any more.
           The Restore pins it again (its file descriptors are held meanwhile)
           and attaches it again.
  update   none: every attribute forces a replacement (a new program).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath

from hercc.dataplane.attach import (
    ETHTOOL_FEATURES,
    NATIVE_PEER_OFFLOADS,
    PROG_PREFIX,
    VETH_DEFAULT_OFFLOADS,
    object_name,
    pin_dir,
    program_hook,
)
from hercc.dataplane.maps import XDP_NATIVE
from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.system import System
from hercc.resources.errors import MalformedId
from hercc.resources.ids import BpfId
from hercc.resources.model import Resource
from hercc.state.bpf import Attachment

__all__ = ["BpfAttachments"]


class BpfAttachments:
    """Attaches and detaches a node's dataplane programs through the System boundary."""

    def __init__(self, system: System, node: str) -> None:
        self.sys = system
        self.node = node

    def _id(self, r: Resource) -> BpfId:
        try:
            rid = r.id_as(BpfId)
            program_hook(rid.hook)
        except (MalformedId, StopIteration):
            raise ExecutorError(f"malformed resource id {r.address}") from None
        return rid

    def _dir(self, rid: BpfId, r: Resource) -> PurePosixPath:
        return pin_dir(self.node, rid.ns, program_hook(rid.hook), str(r.attrs["digest"]))

    def _program(self, rid: BpfId, r: Resource) -> PurePosixPath:
        return self._dir(rid, r) / f"{PROG_PREFIX}{r.attrs['program']}"

    def create(self, r: Resource) -> None:
        rid = self._id(r)
        if r.content is None:
            raise ExecutorError(f"{r.address}: nothing to load (the plan holds no program)")
        content = json.loads(r.content)
        hook = program_hook(rid.hook)
        directory = self._dir(rid, r)
        pinned = {o.name for o in self.sys.bpf_pinned(self.node, rid.ns)}
        if object_name(hook, str(r.attrs["digest"])) not in pinned:
            self.sys.bpf_load(hook, content["header"], directory)
        self.sys.bpf_fill(rid.ns, content["routes"], directory)
        native = r.attrs.get("mode") == XDP_NATIVE
        if native:
            self._offloads(r, content.get("peer"), NATIVE_PEER_OFFLOADS)
        self.sys.bpf_attach(rid.ns, rid.ifname, hook, self._program(rid, r), native=native)

    def _offloads(self, r: Resource, peer: str | None, values: Mapping[str, str]) -> None:
        """Set the veth's other end's offloads ("NS/IF"; ethtool -K)."""
        if not peer or "/" not in peer:
            raise ExecutorError(f"{r.address}: native XDP, but no other end of the veth known")
        ns, ifname = peer.split("/", 1)
        features = [w for attr, v in sorted(values.items()) for w in (ETHTOOL_FEATURES[attr], v)]
        self.sys.run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname, *features])

    def _detach(self, ns: str, a: Attachment) -> None:
        if a.pref is not None and a.handle is not None:  # a TC filter, exactly this one
            self.sys.run(
                ["tc", "-n", ns, "filter", "del", "dev", a.ifname, "ingress",
                 "protocol", "all", "pref", str(a.pref), "handle", a.handle, "bpf"]
            )  # fmt: skip
        else:
            mode = "xdpdrv" if a.mode == XDP_NATIVE else "xdpgeneric"
            self.sys.run(["ip", "-n", ns, "link", "set", "dev", a.ifname, mode, "off"])

    def delete(self, r: Resource) -> Restore:
        rid = self._id(r)
        hook = program_hook(rid.hook)
        objects = self.sys.bpf_pinned(self.node, rid.ns)
        ours = {pid for o in objects for pid in o.programs.values()}
        for a in self.sys.bpf_attachments(rid.ns):
            if a.ifname == rid.ifname and a.hook == rid.hook and a.prog_id in ours:
                self._detach(rid.ns, a)
        still = {a.prog_id for a in self.sys.bpf_attachments(rid.ns)}
        name = object_name(hook, str(r.attrs["digest"]))
        mine = next((o for o in objects if o.name == name), None)
        repin = None
        if mine is not None and not set(mine.programs.values()) & still:
            repin = self.sys.bpf_unpin(self._dir(rid, r))
        native = r.attrs.get("mode") == XDP_NATIVE
        peer = json.loads(r.content).get("peer") if r.content else None
        if native and peer:
            try:
                self._offloads(r, peer, VETH_DEFAULT_OFFLOADS)
            except OperationError:
                if self._peer_present(peer):  # an end that is gone has nothing to restore
                    raise

        def restore() -> None:
            if repin is not None:
                repin()
            if native and peer:
                self._offloads(r, peer, NATIVE_PEER_OFFLOADS)
            self.sys.bpf_attach(rid.ns, rid.ifname, hook, self._program(rid, r), native=native)

        return restore

    def _peer_present(self, peer: str) -> bool:
        ns, ifname = peer.split("/", 1)
        try:
            self.sys.run(["ip", "-n", ns, "link", "show", ifname])
        except OperationError:
            return False
        return True
