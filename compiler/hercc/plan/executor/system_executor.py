"""SystemExecutor: the apply.Executor that changes a real node, one resource kind at a time.

Every side effect goes through the System boundary (hercc.plan.executor.system),
so tests can put a fake in front of it; wireguard-go processes are kept by
WireGuardGo (hercc.plan.executor.wireguard_go).

Per kind (ids as in resources/model.py):

  netns      `ip netns add` (+ lo up), recorded in the OwnedRegistry; and
  sysctl     written inside NS, its default on delete (Namespaces,
             hercc.plan.executor.namespaces).
  wireguard  wireguard-go started in the underlay namespace (its UDP socket stays
             there), its TUN moved into NS; or a kernel link where the kernel has
             WireGuard. Alias `hercules:<node>`, MTU, key and port through the
             WireGuard driver, then up. Delete reads key and port first (for the
             in-memory Restore), deletes the link and makes sure the process it
             started (or recorded in STATE_DIR/<node>.wireguard-go.json) is gone.
  address    pyroute2 addr add/del (IPv6 with nodad).
  peer       driver.set_peer / remove_peer; secrets resolved from fingerprints (a
             preshared key through the KeyLookup by the peer's node, its label).
  veth       the pair with both ends in their namespaces, aliased and up (Veths,
             hercc.plan.executor.veths); an MTU changes in place.
  bridge, vxlan, vlan, port   the enterprise L2 links as pyroute2 link requests; a
             port is only attached and detached (L2Links, hercc.plan.executor.l2_links).
  route      pyroute2 route add/del (onlink when `via` is given).
  nft        the table's ruleset (the resource's content) checked and loaded
             with `nft -f -` in NS, replacing it whole; delete `nft delete table`
             (NftTables, hercc.plan.executor.nft_tables).
  probe      a tunnel's liveness probe, a detached `ping` in NS, its PID recorded in
             STATE_DIR/<node>.probes.json; delete stops it by PID (Probes,
             hercc.plan.executor.probes).
  bpf        a dataplane program compiled, pinned and attached at a hook of an
             interface; delete detaches exactly ours and unpins what nothing uses
             (BpfAttachments, hercc.plan.executor.bpf_attach).
  exporter   the node's flow exporter, `hercc flows export` detached, its sockets
             in the underlay namespace, its PID recorded in
             STATE_DIR/<node>.exporter.json; delete stops it by PID, after its
             last export (FlowExporters, hercc.plan.executor.flow_exporter).
  haproxy    a gateway's HAProxy, and ipsec, a node's connections in charon: handed to the
             executors in `kinds` (executor/haproxy.py, executor/ipsec.py).

A resource in HOST_NETNS (resources/gateway_naming.py, a real gateway's) is
in the host's own namespace: `ip` gets no `-n`, and a WireGuard interface
started there stays there.

Secrets (private and preshared keys) are resolved from their fingerprints:
first from what this executor has seen (kept in memory only), then from the
KeyLookup, then by reading the device. They never appear in argv, messages
or logs.

`HERCC_FAIL_AT=<address>` (a test hook) makes the first operation on that
address fail, so a transactional rollback can be exercised on a live node.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from hercc.diagnostics import OperationError
from hercc.plan.apply import Executor, Restore
from hercc.plan.desired import KeyLookup
from hercc.plan.executor.bpf_attach import BpfAttachments
from hercc.plan.executor.errors import (
    CommandFailed,
    ExecutorError,
    InjectedFailure,
    SecretUnavailable,
)
from hercc.plan.executor.flow_exporter import FlowExporters
from hercc.plan.executor.l2_links import L2_KINDS, L2Links
from hercc.plan.executor.namespaces import Namespaces
from hercc.plan.executor.nft_tables import NftTables
from hercc.plan.executor.probes import Probes
from hercc.plan.executor.system import LinuxSystem, System, ip_argv
from hercc.plan.executor.veths import Veths
from hercc.plan.executor.wireguard_go import WireGuardGo
from hercc.resources.canonical import canonical_private_key
from hercc.resources.errors import MalformedId
from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.gateway_naming import netns_arg
from hercc.resources.ids import AddressId, IdT, InterfaceId, PeerId, RouteId
from hercc.resources.model import STATE_DIR, Resource
from hercc.resources.naming import Naming
from hercc.state.registry import OwnedRegistry, owner_alias
from hercc.state.wireguard.kernel import kernel_unavailable_reason
from hercc.state.wireguard.model import WgDevice, WireGuardDriver
from hercc.state.wireguard.uapi import DEFAULT_SOCKET_DIR

__all__ = ["SystemExecutor"]

FAIL_ENV = "HERCC_FAIL_AT"


class _Kind(Protocol):
    """A kind's own executor (Veths, NftTables, Probes, BpfAttachments, FlowExporters)."""

    def create(self, r: Resource) -> None: ...

    def delete(self, r: Resource) -> Restore: ...


def _id(resource: Resource, shape: type[IdT]) -> IdT:
    try:
        return resource.id_as(shape)
    except MalformedId:
        raise ExecutorError(f"malformed resource id {resource.address}") from None


class SystemExecutor:
    """apply.Executor over a real node (see the module docstring)."""

    def __init__(
        self,
        node: str,
        naming: Naming,
        keys: KeyLookup | None,
        wireguard: WireGuardDriver,
        registry: OwnedRegistry,
        underlay_ns: str | None = None,
        *,
        system: System | None = None,
        kernel_wireguard: bool | None = None,
        socket_dir: str | os.PathLike[str] = DEFAULT_SOCKET_DIR,
        state_dir: str | os.PathLike[str] = STATE_DIR,
        fail_at: str | None = None,
        kinds: Mapping[str, Executor] | None = None,
    ) -> None:
        self.node = node
        self.naming = naming
        self.keys = keys
        self.wg = wireguard
        self.registry = registry
        self.underlay_ns = underlay_ns
        self.sys: System = system if system is not None else LinuxSystem()
        self.kernel = (
            kernel_unavailable_reason() is None if kernel_wireguard is None else kernel_wireguard
        )
        self.wireguard_go = WireGuardGo(
            self.sys, node, underlay_ns, Path(socket_dir), Path(state_dir)
        )
        self.fail_at = fail_at if fail_at is not None else os.environ.get(FAIL_ENV) or None
        self._secrets: dict[str, str] = {}  # fingerprint -> key; memory only
        self.alias = owner_alias(node)
        self.nft = NftTables(self.sys)
        self.probes = Probes(self.sys, node, Path(state_dir))
        self.bpf = BpfAttachments(self.sys, node)
        self.exporters = FlowExporters(self.sys, node, Path(state_dir), underlay_ns)
        self.namespaces = Namespaces(self.sys, registry)
        self.veths = Veths(self.sys, self.alias)
        self.l2 = L2Links(self.sys, self.alias)
        # the kinds whose create and delete are another object's, as they are
        self._delegates: dict[str, _Kind] = {
            "veth": self.veths,
            "nft": self.nft,
            "probe": self.probes,
            "bpf": self.bpf,
            "exporter": self.exporters,
            **dict.fromkeys(L2_KINDS, self.l2),
        }
        # the kinds that are another executor's whole, update too (haproxy, ipsec)
        self.kinds = dict(kinds or {})

    # ------------------------------------------------------------ protocol

    def create(self, resource: Resource) -> None:
        self._hook(resource.address)
        if resource.kind in self.kinds:
            return self.kinds[resource.kind].create(resource)
        if resource.kind in self._delegates:
            return self._delegates[resource.kind].create(resource)
        getattr(self, f"_create_{resource.kind}", self._unknown)(resource)

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        self._hook(after.address)
        if after.kind in self.kinds:
            self.kinds[after.kind].update(before, after, changed)
        elif after.kind == "wireguard":
            self._update_wireguard(before, after, changed)
        elif after.kind == "peer":
            self._update_peer(before, after, changed)
        elif after.kind == "sysctl":
            self._create_sysctl(after)
        elif after.kind == "veth":
            self.veths.update(after, changed)
        elif after.kind in L2_KINDS:
            self.l2.update(before, after, changed)
        elif after.kind == "route":
            self._delete_route(before)
            self._create_route(after)
        elif after.kind == "nft":
            self.nft.update(after)
        elif changed:
            raise ExecutorError(f"{after.address}: {', '.join(changed)} cannot change in place")

    def delete(self, resource: Resource) -> Restore:
        self._hook(resource.address)
        if resource.kind in self.kinds:
            return self.kinds[resource.kind].delete(resource)
        if resource.kind in self._delegates:
            return self._delegates[resource.kind].delete(resource)
        restore: Restore = getattr(self, f"_delete_{resource.kind}", self._unknown)(resource)
        return restore

    # ------------------------------------------------------------ common

    def _hook(self, address: str) -> None:
        if self.fail_at is not None and address == self.fail_at:
            self.fail_at = None  # once: the rollback must go through
            raise InjectedFailure(f"injected failure at {address} ({FAIL_ENV})")

    def _unknown(self, resource: Resource) -> Any:
        raise ExecutorError(f"{resource.address}: unknown kind {resource.kind!r} here")

    def _network(self, ns: str) -> str:
        prefix = self.naming.netns_prefix
        if not ns.startswith(prefix):
            raise SecretUnavailable(
                f"namespace {ns} does not start with {prefix!r}: cannot tell its network "
                "(use the same --netns-prefix as the plan)"
            )
        return ns[len(prefix) :]

    def _remember(self, secret: str | None) -> None:
        if secret is not None:
            self._secrets[fingerprint(secret)] = secret

    def _remember_private(self, key: str | None) -> None:
        """A private key, under the fingerprint the plan uses (the clamped key's)."""
        if key is not None:
            self._secrets[private_key_fingerprint(key)] = canonical_private_key(key)

    def _remember_device(self, dev: WgDevice) -> None:
        self._remember_private(dev.private_key)
        for peer in dev.peers.values():
            self._remember(peer.preshared_key)

    def _read(self, ns: str, ifname: str) -> WgDevice:
        dev = self.wg.read(ifname, netns=ns)
        self._remember_device(dev)
        return dev

    def _private_key(self, fp: str | None, ns: str, ifname: str, live: bool) -> str | None:
        if fp is None:
            return None
        if fp not in self._secrets and self.keys is not None:
            key = self.keys.private_key(self.node)
            self._remember_private(key)
        if fp not in self._secrets and live:
            with contextlib.suppress(OperationError):
                self._read(ns, ifname)
        if fp not in self._secrets:
            raise SecretUnavailable(
                f"the private key of node {self.node} for {ns}/{ifname} is not available "
                "(pass --keys DIR, the keys directory the plan was made with)"
            )
        return self._secrets[fp]

    def _psk(self, fp: str | None, ns: str, ifname: str, peer_name: str | None) -> str | None:
        if fp is None:
            return None
        if fp not in self._secrets and self.keys is not None and peer_name is not None:
            with contextlib.suppress(OperationError):
                self._remember(self.keys.psk(self._network(ns), self.node, peer_name))
        if fp not in self._secrets:
            with contextlib.suppress(OperationError):
                self._read(ns, ifname)
        if fp not in self._secrets:
            raise SecretUnavailable(
                f"the preshared key of peer {peer_name or '?'} on {ns}/{ifname} is not "
                "available (pass --keys DIR)"
            )
        return self._secrets[fp]

    # ------------------------------------------------------------ netns, sysctl

    def _create_netns(self, r: Resource) -> None:
        self.namespaces.create_netns(r)

    def _delete_netns(self, r: Resource) -> Restore:
        return self.namespaces.delete_netns(r)

    def _create_sysctl(self, r: Resource) -> None:
        self.namespaces.create_sysctl(r)

    def _delete_sysctl(self, r: Resource) -> Restore:
        return self.namespaces.delete_sysctl(r)

    # ------------------------------------------------------------ wireguard

    def _create_wireguard(self, r: Resource) -> None:
        ns, ifname = _id(r, InterfaceId)
        a = r.attrs
        key = self._private_key(a.get("private_key"), ns, ifname, live=False)
        if self.kernel:
            self.sys.run(ip_argv(self.underlay_ns, ["link", "add", ifname, "type", "wireguard"]))
        else:
            self.wireguard_go.start(ifname)
        try:
            if netns_arg(ns) != self.underlay_ns:  # else started where it belongs
                self.sys.run(ip_argv(self.underlay_ns, ["link", "set", ifname, "netns", ns]))
            link = ["link", "set", ifname, "alias", self.alias]
            if a.get("mtu"):
                link += ["mtu", str(a["mtu"])]
            self.sys.run(ip_argv(ns, link))
            self.wg.set_device(
                ifname,
                netns=ns,
                private_key=key,
                listen_port=a.get("listen_port"),
                fwmark=a.get("fwmark"),
            )
            if a.get("up", True):
                self.sys.run(ip_argv(ns, ["link", "set", ifname, "up"]))
        except OperationError:
            with contextlib.suppress(OperationError):
                self._remove_wireguard(ns, ifname)
            raise

    def _remove_wireguard(self, ns: str, ifname: str) -> None:
        for where in (ns, self.underlay_ns):
            with contextlib.suppress(CommandFailed):
                self.sys.run(ip_argv(where, ["link", "del", ifname]))
                break
        if not self.kernel:
            self.wireguard_go.stop(ifname)

    def _update_wireguard(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        ns, ifname = _id(after, InterfaceId)
        a = after.attrs
        if "mtu" in changed and a.get("mtu"):
            self.sys.run(ip_argv(ns, ["link", "set", ifname, "mtu", str(a["mtu"])]))
        device: dict[str, Any] = {}
        if "private_key" in changed:
            if a.get("private_key") is None:
                raise ExecutorError(f"{after.address}: cannot remove a private key in place")
            device["private_key"] = self._private_key(a["private_key"], ns, ifname, live=True)
        if "listen_port" in changed and a.get("listen_port") is not None:
            device["listen_port"] = a["listen_port"]
        if "fwmark" in changed:
            device["fwmark"] = a.get("fwmark") or 0
        if device:
            if "private_key" in changed:
                self._read(ns, ifname)  # keep the old key for the undo (memory only)
            self.wg.set_device(ifname, netns=ns, **device)
        if "up" in changed:
            state = "up" if a.get("up") else "down"
            self.sys.run(ip_argv(ns, ["link", "set", ifname, state]))

    def _delete_wireguard(self, r: Resource) -> Restore:
        ns, ifname = _id(r, InterfaceId)
        with contextlib.suppress(OperationError):
            self._read(ns, ifname)  # the key and port for the restore, in memory
        self._remove_wireguard(ns, ifname)
        return lambda: self._create_wireguard(r)

    # ------------------------------------------------------------ address, route

    def _create_address(self, r: Resource) -> None:
        ns, ifname, cidr = _id(r, AddressId)
        self.sys.address("add", ns, ifname, cidr)

    def _delete_address(self, r: Resource) -> Restore:
        ns, ifname, cidr = _id(r, AddressId)
        self.sys.address("del", ns, ifname, cidr)
        return lambda: self._create_address(r)

    def _create_route(self, r: Resource) -> None:
        ns, dst = _id(r, RouteId)
        self.sys.route("add", ns, dst, str(r.attrs["dev"]), r.attrs.get("via"))

    def _delete_route(self, r: Resource) -> Restore:
        ns, dst = _id(r, RouteId)
        self.sys.route("del", ns, dst, str(r.attrs["dev"]), r.attrs.get("via"))
        return lambda: self._create_route(r)

    # ------------------------------------------------------------ peer

    def _set_peer(self, r: Resource, label: str | None = None) -> None:
        ns, ifname, pubkey = _id(r, PeerId)
        label = r.label or label
        if pubkey.startswith("unknown-key:"):
            raise SecretUnavailable(
                f"peer {label or pubkey} has no public key "
                "(run `hercc keys init` and pass --keys DIR)"
            )
        a = r.attrs
        psk = self._psk(a.get("preshared_key"), ns, ifname, label)
        self.wg.set_peer(
            ifname,
            pubkey,
            a.get("endpoint"),
            list(a.get("allowed_ips") or ()),
            a.get("keepalive"),
            psk,
            netns=ns,
        )
        self._remember(psk)

    def _create_peer(self, r: Resource) -> None:
        self._set_peer(r)

    def _update_peer(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        if not changed:
            return
        ns, ifname, pubkey = _id(after, PeerId)
        label = after.label or before.label  # an undo goes from the desired to the live
        if "preshared_key" in changed and before.attrs.get("preshared_key") is not None:
            with contextlib.suppress(OperationError):
                self._read(ns, ifname)  # the old PSK for the undo, in memory only
        if "endpoint" in changed and "endpoint" in after.attrs and after.attrs["endpoint"] is None:
            # UAPI cannot clear an endpoint: remove the peer and add it again
            self._psk(after.attrs.get("preshared_key"), ns, ifname, label)
            self.wg.remove_peer(ifname, pubkey, netns=ns)
        self._set_peer(after, label)

    def _delete_peer(self, r: Resource) -> Restore:
        ns, ifname, pubkey = _id(r, PeerId)
        fp = r.attrs.get("preshared_key")
        if fp is not None and fp not in self._secrets:
            with contextlib.suppress(OperationError):
                self._read(ns, ifname)  # the PSK for the restore, in memory only
        if not pubkey.startswith("unknown-key:"):
            self.wg.remove_peer(ifname, pubkey, netns=ns)
        return lambda: self._set_peer(r)
