"""SystemExecutor: the apply.Executor that changes a real node.

Every side effect goes through one small `System` boundary (`LinuxSystem`:
`ip`, `sysctl`, `wireguard-go` as subprocesses with timeouts, addresses and
routes through pyroute2), so tests can put a fake in front of it.

Per kind (ids as in resources/model.py):

  netns      `ip netns add` (+ lo up) and OwnedRegistry.add; delete: `ip netns del`,
             OwnedRegistry.remove; restore recreates it (its children come back
             through their own undo entries).
  sysctl     `ip netns exec NS sysctl -q -w key=value`; delete writes the default
             (resources.sysctl: a sysctl at its default is no resource).
  wireguard  wireguard-go started in the underlay namespace (its UDP socket stays
             there), its TUN moved into NS; or a kernel link where the kernel has
             WireGuard. Alias `hercules:<node>`, MTU, key and port through the
             WireGuard driver, then up. Delete reads key and port first (for the
             in-memory Restore), deletes the link and makes sure the process it
             started (or recorded in STATE_DIR/<node>.wireguard-go.json) is gone.
  address    pyroute2 addr add/del (IPv6 with nodad).
  peer       driver.set_peer / remove_peer; secrets resolved from fingerprints (a
             preshared key through the KeyLookup by the peer's node, its label).
  veth       the pair with both ends in their namespaces, aliased and up.
  route      pyroute2 route add/del (onlink when `via` is given).

Secrets (private and preshared keys) are resolved from their fingerprints:
first from what this executor has seen (kept in memory only), then from the
KeyLookup, then by reading the device. They never appear in argv, messages
or logs.

`HERCC_FAIL_AT=<address>` (a test hook) makes the first operation on that
address fail, so a transactional rollback can be exercised on a live node.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.desired import KeyLookup
from hercc.resources.canonical import canonical_private_key
from hercc.resources.errors import MalformedId
from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.ids import AddressId, IdT, InterfaceId, PeerId, RouteId, SysctlId
from hercc.resources.model import STATE_DIR, Resource
from hercc.resources.naming import Naming
from hercc.resources.sysctl import sysctl_default
from hercc.state.registry import OwnedRegistry, owner_alias
from hercc.state.wireguard import (
    DEFAULT_SOCKET_DIR,
    WgDevice,
    WireGuardDriver,
    kernel_unavailable_reason,
)
from hercc.sysio import process, procfs
from hercc.sysio.process import netns_argv

__all__ = [
    "CommandFailed",
    "ExecutorError",
    "InjectedFailure",
    "LinuxSystem",
    "SecretUnavailable",
    "System",
    "SystemExecutor",
    "WireGuardStartError",
    "wireguard_go_pid_file",
    "wireguard_unavailable_reason",
]

TIMEOUT = 15.0
START_TIMEOUT = 10.0  # wireguard-go: seconds to create its UAPI socket
EXIT_TIMEOUT = 3.0  # wireguard-go: seconds to exit once its TUN is gone
IFA_F_NODAD = 0x02
RTNH_F_ONLINK = 0x04
FAIL_ENV = "HERCC_FAIL_AT"


class ExecutorError(OperationError):
    """A change to the node failed. Messages never contain key material."""


class CommandFailed(ExecutorError):
    """A command or a netlink request was refused or timed out."""


class WireGuardStartError(ExecutorError):
    """wireguard-go did not start or did not create its interface in time."""


class SecretUnavailable(ExecutorError):
    """A private or preshared key the plan needs is not available."""


class InjectedFailure(ExecutorError):
    """The HERCC_FAIL_AT test hook."""


def wireguard_unavailable_reason(which: Callable[[str], str | None] | None = None) -> str | None:
    """None when WireGuard can be run here (kernel module or wireguard-go), else why not."""
    import shutil

    kernel = kernel_unavailable_reason()
    if kernel is None:
        return None
    if (which or shutil.which)("wireguard-go") is not None:
        return None
    return f"no WireGuard available: {kernel}, and wireguard-go is not installed"


# --------------------------------------------------------------------------- the boundary


class Process(Protocol):
    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class System(Protocol):
    """Every side effect of SystemExecutor."""

    def run(self, argv: Sequence[str]) -> str:
        """Run a command (bounded); its stdout. CommandFailed on failure."""
        ...

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Process:
        """Start a long-lived detached process, its output to `log`."""
        ...

    def address(self, action: str, ns: str, ifname: str, cidr: str) -> None:
        """action "add" or "del"; deleting an absent address is fine."""
        ...

    def route(self, action: str, ns: str, dst: str, dev: str, via: str | None) -> None:
        """action "add" or "del"; deleting an absent route is fine."""
        ...

    def exists(self, path: Path) -> bool: ...

    def pid_alive(self, pid: int, ifname: str) -> bool:
        """Whether `pid` is (still) a wireguard-go for `ifname`."""
        ...

    def kill(self, pid: int, sig: int) -> None: ...


def ip_argv(ns: str | None, args: Sequence[str]) -> list[str]:
    return ["ip", *(["-n", ns] if ns else []), *args]


def wireguard_go_pid_file(state_dir: str | os.PathLike[str], node: str) -> Path:
    """Where the executor records the wireguard-go PIDs of `node` (interface -> PID)."""
    return Path(state_dir) / f"{node}.wireguard-go.json"


class LinuxSystem:
    """The real node: subprocesses with a timeout, pyroute2 for addresses and routes."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str]) -> str:
        return process.run(argv, timeout=self.timeout, error=CommandFailed).stdout

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Process:
        return process.start(argv, log=log, env=env, error=WireGuardStartError)

    def _ipr(self, ns: str) -> Any:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        try:
            return IPRoute(netns=ns, flags=0)
        except Exception as exc:  # pyroute2 raises OSError and its own errors
            raise CommandFailed(f"cannot open netlink in namespace {ns}: {exc}") from None

    def _index(self, ipr: Any, ns: str, ifname: str) -> int:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise CommandFailed(f"no interface {ifname} in namespace {ns}")
        return int(found[0])

    def address(self, action: str, ns: str, ifname: str, cidr: str) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

        iface = ipaddress.ip_interface(cidr)
        with self._ipr(ns) as ipr:
            try:
                index = self._index(ipr, ns, ifname)
            except CommandFailed:
                if action == "del":
                    return
                raise
            kw: dict[str, Any] = {
                "index": index,
                "address": str(iface.ip),
                "prefixlen": iface.network.prefixlen,
            }
            if iface.version == 6 and action == "add":
                kw["flags"] = IFA_F_NODAD
            try:
                ipr.addr(action, **kw)
            except NetlinkError as exc:
                if action == "del" and exc.code in (99, 19, 2):  # EADDRNOTAVAIL, ENODEV
                    return
                raise CommandFailed(
                    f"address {action} {cidr} on {ifname} in {ns}: {os.strerror(exc.code)}"
                ) from None

    def route(self, action: str, ns: str, dst: str, dev: str, via: str | None) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        with self._ipr(ns) as ipr:
            try:
                index = self._index(ipr, ns, dev)
            except CommandFailed:
                if action == "del":
                    return
                raise
            kw: dict[str, Any] = {"dst": dst, "oif": index}
            if via is not None:
                kw["gateway"] = via
                if action == "add" and ipaddress.ip_address(via).version == 4:
                    kw["flags"] = RTNH_F_ONLINK
            try:
                ipr.route(action, **kw)
            except NetlinkError as exc:
                if action == "del" and exc.code in (3, 19, 2):  # ESRCH, ENODEV, ENOENT
                    return
                raise CommandFailed(
                    f"route {action} {dst} dev {dev} in {ns}: {os.strerror(exc.code)}"
                ) from None

    def exists(self, path: Path) -> bool:
        return path.exists()

    def pid_alive(self, pid: int, ifname: str) -> bool:
        args = procfs.cmdline(pid) or []
        return bool(args) and os.path.basename(args[0]) == "wireguard-go" and args[-1] == ifname

    def kill(self, pid: int, sig: int) -> None:
        procfs.kill(pid, sig)


# --------------------------------------------------------------------------- helpers


def _id(resource: Resource, shape: type[IdT]) -> IdT:
    try:
        return resource.id_as(shape)
    except MalformedId:
        raise ExecutorError(f"malformed resource id {resource.address}") from None


@dataclass
class _Started:
    pid: int
    proc: Process | None  # None: recorded by an earlier run


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
        self.socket_dir = Path(socket_dir)
        self.state_dir = Path(state_dir)
        self.fail_at = fail_at if fail_at is not None else os.environ.get(FAIL_ENV) or None
        self._secrets: dict[str, str] = {}  # fingerprint -> key; memory only
        self._started: dict[str, _Started] = {}
        self.alias = owner_alias(node)

    # ------------------------------------------------------------ protocol

    def create(self, resource: Resource) -> None:
        self._hook(resource.address)
        getattr(self, f"_create_{resource.kind}", self._unknown)(resource)

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        self._hook(after.address)
        if after.kind == "wireguard":
            self._update_wireguard(before, after, changed)
        elif after.kind == "peer":
            self._update_peer(before, after, changed)
        elif after.kind == "sysctl":
            self._create_sysctl(after)
        elif after.kind == "veth":
            ns, ifname = _id(after, InterfaceId)
            if "mtu" in changed:
                mtu = str(after.attrs["mtu"])
                self.sys.run(ip_argv(ns, ["link", "set", ifname, "mtu", mtu]))
                peer_ns, peer_if = after.attrs["peer_netns"], after.attrs["peer_ifname"]
                self.sys.run(ip_argv(peer_ns, ["link", "set", peer_if, "mtu", mtu]))
        elif after.kind == "route":
            self._delete_route(before)
            self._create_route(after)
        elif changed:
            raise ExecutorError(f"{after.address}: {', '.join(changed)} cannot change in place")

    def delete(self, resource: Resource) -> Restore:
        self._hook(resource.address)
        restore: Restore = getattr(self, f"_delete_{resource.kind}", self._unknown)(resource)
        return restore

    # ------------------------------------------------------------ common

    def _hook(self, address: str) -> None:
        if self.fail_at is not None and address == self.fail_at:
            self.fail_at = None  # once: the rollback must go through
            raise InjectedFailure(f"injected failure at {address} ({FAIL_ENV})")

    def _unknown(self, resource: Resource) -> Any:
        raise ExecutorError(f"{resource.address}: unknown kind {resource.kind!r}")

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

    # ------------------------------------------------------------ netns

    def _create_netns(self, r: Resource) -> None:
        ns = r.id
        self.sys.run(["ip", "netns", "add", ns])
        try:
            self.registry.add(ns)
            self.sys.run(ip_argv(ns, ["link", "set", "lo", "up"]))
        except OperationError:
            with contextlib.suppress(OperationError):
                self.sys.run(["ip", "netns", "del", ns])
            raise

    def _delete_netns(self, r: Resource) -> Restore:
        ns = r.id
        if self.sys.exists(Path("/run/netns") / ns):
            self.sys.run(["ip", "netns", "del", ns])
        self.registry.remove(ns)
        return lambda: self._create_netns(r)

    # ------------------------------------------------------------ sysctl

    def _write_sysctl(self, ns: str, key: str, value: str) -> None:
        self.sys.run(netns_argv(ns, ["sysctl", "-q", "-w", f"{key}={value}"]))

    def _create_sysctl(self, r: Resource) -> None:
        ns, key = _id(r, SysctlId)
        self._write_sysctl(ns, key, str(r.attrs["value"]))

    def _delete_sysctl(self, r: Resource) -> Restore:
        ns, key = _id(r, SysctlId)
        if self.sys.exists(Path("/run/netns") / ns):
            self._write_sysctl(ns, key, sysctl_default(key))
        return lambda: self._write_sysctl(ns, key, str(r.attrs["value"]))

    # ------------------------------------------------------------ wireguard

    def _socket(self, ifname: str) -> Path:
        return self.socket_dir / f"{ifname}.sock"

    def _recorded(self) -> dict[str, int]:
        return procfs.read_pid_file(wireguard_go_pid_file(self.state_dir, self.node))

    def _record(self, ifname: str, pid: int | None) -> None:
        data = self._recorded()
        if pid is None:
            data.pop(ifname, None)
        else:
            data[ifname] = pid
        path = wireguard_go_pid_file(self.state_dir, self.node)
        try:
            procfs.write_pid_file(path, data)
        except OSError as exc:
            raise ExecutorError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _start_wireguard_go(self, ifname: str) -> None:
        sock = self._socket(ifname)
        if self.sys.exists(sock):
            raise WireGuardStartError(
                f"{sock} exists: a WireGuard interface named {ifname} is already running"
            )
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
        log = self.state_dir / f"{self.node}.{ifname}.log"
        argv = netns_argv(self.underlay_ns, ["wireguard-go", "-f", ifname])
        proc = self.sys.spawn(argv, env, log)
        self._started[ifname] = _Started(proc.pid, proc)
        self._record(ifname, proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.sys.exists(sock):
            code = proc.poll()
            if code is not None:
                self._started.pop(ifname, None)
                self._record(ifname, None)
                raise WireGuardStartError(
                    f"wireguard-go {ifname} exited with status {code}: {_last_line(log)}"
                )
            if time.monotonic() > deadline:
                self._stop(ifname)
                raise WireGuardStartError(f"wireguard-go made no {sock} within {START_TIMEOUT:g} s")
            time.sleep(0.02)

    def _stop(self, ifname: str) -> None:
        """Make sure the wireguard-go of `ifname` we started or recorded is gone."""
        started = self._started.pop(ifname, None)
        pid = started.pid if started is not None else self._recorded().get(ifname)
        proc = started.proc if started is not None else None
        if pid is not None:
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and self.sys.pid_alive(pid, ifname):
                    self.sys.kill(pid, sig)
                deadline = time.monotonic() + EXIT_TIMEOUT
                while self.sys.pid_alive(pid, ifname) and time.monotonic() < deadline:
                    if proc is not None and proc.poll() is not None:
                        break
                    time.sleep(0.02)
                if (proc is not None and proc.poll() is not None) or not self.sys.pid_alive(
                    pid, ifname
                ):
                    break
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    proc.wait(timeout=EXIT_TIMEOUT)
            self._record(ifname, None)
        sock = self._socket(ifname)
        if self.sys.exists(sock):
            with contextlib.suppress(OSError):
                sock.unlink()

    def _create_wireguard(self, r: Resource) -> None:
        ns, ifname = _id(r, InterfaceId)
        a = r.attrs
        key = self._private_key(a.get("private_key"), ns, ifname, live=False)
        if self.kernel:
            self.sys.run(ip_argv(self.underlay_ns, ["link", "add", ifname, "type", "wireguard"]))
        else:
            self._start_wireguard_go(ifname)
        try:
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
            self._stop(ifname)

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

    # ------------------------------------------------------------ veth

    def _create_veth(self, r: Resource) -> None:
        ns, host = _id(r, InterfaceId)
        peer_ns = r.attrs.get("peer_netns")
        peer_if = r.attrs.get("peer_ifname")
        if not peer_ns or not peer_if:
            raise ExecutorError(f"{r.address}: needs peer_netns and peer_ifname")
        mtu = [*(["mtu", str(r.attrs["mtu"])] if r.attrs.get("mtu") else [])]
        peer = ["peer", "name", peer_if, *mtu, "netns", peer_ns]
        self.sys.run(ip_argv(ns, ["link", "add", host, *mtu, "type", "veth", *peer]))
        try:
            self.sys.run(ip_argv(ns, ["link", "set", host, "alias", self.alias, "up"]))
            self.sys.run(ip_argv(peer_ns, ["link", "set", peer_if, "alias", self.alias, "up"]))
            self.sys.run(ip_argv(peer_ns, ["link", "set", "lo", "up"]))
        except OperationError:
            with contextlib.suppress(OperationError):
                self.sys.run(ip_argv(ns, ["link", "del", host]))
            raise

    def _delete_veth(self, r: Resource) -> Restore:
        ns, host = _id(r, InterfaceId)
        try:
            self.sys.run(ip_argv(ns, ["link", "del", host]))
        except CommandFailed:
            if not self._gone(ns, host):
                raise
        return lambda: self._create_veth(r)

    def _gone(self, ns: str, ifname: str) -> bool:
        try:
            self.sys.run(ip_argv(ns, ["link", "show", ifname]))
        except CommandFailed:
            return True
        return False

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


def _last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no output)"
