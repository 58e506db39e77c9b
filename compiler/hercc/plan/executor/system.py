"""The System boundary: every side effect of the executor, and its Linux implementation.

`System` is one small interface (commands, a detached process, addresses
and routes, nft, paths, PIDs and what they run), so tests put a recording fake in front of the
executor. `LinuxSystem` is the real node: `ip`, `sysctl`, `nft` and `wireguard-go`
as subprocesses with timeouts (hercc.sysio), addresses and routes through
pyroute2. Kept apart from the executor, which decides what to change and
only says so through this interface.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from hercc.plan.executor.errors import CommandFailed, WireGuardStartError
from hercc.plan.executor.link_requests import link_kwargs
from hercc.resources.gateway_naming import netns_arg
from hercc.state import bpf_load as bpf_objects
from hercc.state.bpf import Attachment, BpfCli, attachments_of
from hercc.state.bpf_pins import PinnedObject
from hercc.state.links import VLAN_UNSUPPORTED
from hercc.state.probes import ProcProbes
from hercc.sysio import process, procfs

__all__ = ["LinuxSystem", "Process", "System", "ip_argv"]

TIMEOUT = 15.0
IFA_F_NODAD = 0x02
RTNH_F_ONLINK = 0x04


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

    def link(self, ns: str, command: str, request: Mapping[str, Any]) -> None:
        """One netlink link request in `ns`: command "add", "set" or "del", `request`
        naming interfaces by name (plan/executor/l2_links.py); deleting an absent one is fine."""
        ...

    def interface_of(self, ns: str, address: str) -> str | None:
        """The interface in `ns` that holds `address`, or None."""
        ...

    def nft(self, ns: str, args: Sequence[str], ruleset: str | None = None) -> str:
        """Run `nft ARGS` inside `ns`, `ruleset` on its stdin (for `-f -`); its stdout.
        CommandFailed on failure."""
        ...

    def exists(self, path: Path) -> bool: ...

    def pid_alive(self, pid: int, ifname: str) -> bool:
        """Whether `pid` is (still) a wireguard-go for `ifname`."""
        ...

    def kill(self, pid: int, sig: int) -> None: ...

    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        """The arguments of `pid` while it is alive and in namespace `ns`, else None."""
        ...

    def bpf_pinned(self, node: str, ns: str) -> list[PinnedObject]:
        """The dataplane objects `node` pinned for namespace `ns` (state/bpf_pins.py)."""
        ...

    def bpf_attachments(self, ns: str) -> list[Attachment]:
        """Every program attached at ingress or XDP in `ns` (state/bpf.py)."""
        ...

    def bpf_load(self, hook: str, header: str, directory: PurePosixPath) -> None:
        """Compile the `hook` program with `header` (BCC) and pin it into `directory`,
        mounting the bpffs first when none is."""
        ...

    def bpf_fill(
        self, ns: str, routes: Sequence[Mapping[str, Any]], directory: PurePosixPath
    ) -> None:
        """Write maps.json's routes of `ns` into the pinned route tries."""
        ...

    def bpf_attach(
        self, ns: str, ifname: str, hook: str, program: PurePosixPath, *, native: bool = False
    ) -> None:
        """Attach the pinned `program` at `hook` ("tc" ingress or "xdp", in native (driver)
        mode when `native`, else generic) of IFNAME in `ns`."""
        ...

    def bpf_unpin(self, directory: PurePosixPath) -> Callable[[], None]:
        """Unpin an object; what it returns pins it again."""
        ...


def ip_argv(ns: str | None, args: Sequence[str]) -> list[str]:
    """`ip` in namespace `ns` (None or HOST_NETNS: the host's own)."""
    ns = netns_arg(ns)
    return ["ip", *(["-n", ns] if ns else []), *args]


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
            where = netns_arg(ns)
            return IPRoute() if where is None else IPRoute(netns=where, flags=0)
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

    def link(self, ns: str, command: str, request: Mapping[str, Any]) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        name = str(request["ifname"])
        with self._ipr(ns) as ipr:
            if command == "del" and not ipr.link_lookup(ifname=name):
                return
            kwargs = link_kwargs(command, request, lambda n: self._index(ipr, ns, n))
            try:
                ipr.link(command, **kwargs)
            except NetlinkError as exc:
                if command == "del" and exc.code == 19:  # ENODEV: gone meanwhile
                    return
                why = os.strerror(exc.code)
                if request.get("kind") == "vlan" and exc.code == errno.EOPNOTSUPP:
                    why = VLAN_UNSUPPORTED
                raise CommandFailed(f"link {command} {name} in {ns}: {why}") from None

    def interface_of(self, ns: str, address: str) -> str | None:
        with self._ipr(ns) as ipr:
            for msg in ipr.get_addr(address=address):
                found = ipr.get_links(msg["index"])
                return str(found[0].get_attr("IFLA_IFNAME")) if found else None
        return None

    def nft(self, ns: str, args: Sequence[str], ruleset: str | None = None) -> str:
        done = process.run(
            ["nft", *args], input=ruleset, netns=ns, timeout=self.timeout, error=CommandFailed
        )
        return done.stdout

    def exists(self, path: Path) -> bool:
        return path.exists()

    def pid_alive(self, pid: int, ifname: str) -> bool:
        args = procfs.cmdline(pid) or []
        return bool(args) and os.path.basename(args[0]) == "wireguard-go" and args[-1] == ifname

    def kill(self, pid: int, sig: int) -> None:
        procfs.kill(pid, sig)

    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        return ProcProbes().argv_in(pid, ns)

    def bpf_pinned(self, node: str, ns: str) -> list[PinnedObject]:
        return BpfCli().pinned(node, ns)

    def bpf_attachments(self, ns: str) -> list[Attachment]:
        return attachments_of(BpfCli(timeout=self.timeout), ns)

    def bpf_load(self, hook: str, header: str, directory: PurePosixPath) -> None:
        bpf_objects.load(hook, header, Path(directory), self.run)

    def bpf_fill(
        self, ns: str, routes: Sequence[Mapping[str, Any]], directory: PurePosixPath
    ) -> None:
        bpf_objects.fill(ns, routes, Path(directory))

    def bpf_attach(
        self, ns: str, ifname: str, hook: str, program: PurePosixPath, *, native: bool = False
    ) -> None:
        bpf_objects.attach(ns, ifname, hook, Path(program), native=native)

    def bpf_unpin(self, directory: PurePosixPath) -> Callable[[], None]:
        return bpf_objects.unpin(Path(directory))
