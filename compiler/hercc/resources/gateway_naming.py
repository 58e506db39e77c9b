"""Where a gateway lives on its machine: `GatewayNaming`, and the host's own namespace.

A gateway is planned and applied like a node (plan/gateway_service.py), with
three names of its own:

  netns        the network namespace that holds its WireGuard interface and runs
               its HAProxy. On a real gateway the host's own namespace, named
               HOST_NETNS in resource ids ("(host)": no named namespace can be
               called that, `ip netns` names are file names and the executor
               never passes this one to `ip -n`); in the lab (or with
               --netns-prefix P) a named one, `<P>g-<gateway>`, made by whoever
               runs the gateway (the lab's underlay), never by the gateway's apply.
  ifname       its WireGuard interface: HOST_IFNAME ("hercgw") on a real gateway;
               with a prefix one unique to prefix and gateway, because
               wireguard-go's UAPI socket /var/run/wireguard/<IF>.sock is shared
               by every namespace of the machine.
  runtime_dir  HAProxy's directory: its configuration, PID file, master socket,
               admin socket and log (`HaproxyPaths`): /run/hercules/<P>haproxy-<gateway>/.

`netns_arg` turns a resource's namespace into what `ip -n`, pyroute2 and the
WireGuard drivers take: None for the host's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hercc.resources.naming import ifname

__all__ = [
    "GATEWAY_OWNER_PREFIX",
    "HOST_IFNAME",
    "HOST_NETNS",
    "RUN_DIR",
    "GatewayNaming",
    "HaproxyPaths",
    "gateway_owner",
    "netns_arg",
]

HOST_NETNS = "(host)"
HOST_IFNAME = "hercgw"
RUN_DIR = Path("/run/hercules")
GATEWAY_OWNER_PREFIX = "gateway:"  # as keys.py names a gateway next to nodes


def netns_arg(ns: str | None) -> str | None:
    """The namespace to hand to `ip -n`, pyroute2 or a WireGuard driver: None for the host's."""
    return None if ns is None or ns == HOST_NETNS else ns


def gateway_owner(gateway: str) -> str:
    """The gateway as an owner next to nodes: its aliases, registry, records and key name."""
    return GATEWAY_OWNER_PREFIX + gateway


@dataclass(frozen=True)
class HaproxyPaths:
    """The files of one HAProxy, all in its runtime directory."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def pid_file(self) -> Path:
        return self.directory / "haproxy.pid"

    @property
    def master_socket(self) -> Path:
        return self.directory / "master.sock"

    @property
    def admin_socket(self) -> Path:
        return self.directory / "admin.sock"

    @property
    def log(self) -> Path:
        return self.directory / "haproxy.log"


@dataclass(frozen=True)
class GatewayNaming:
    """The names of one gateway on its machine (see the module docstring)."""

    gateway: str
    netns: str = HOST_NETNS
    ifname: str = HOST_IFNAME
    runtime_dir: Path = RUN_DIR / "haproxy"

    @classmethod
    def of(cls, gateway: str, prefix: str = "", run_dir: Path = RUN_DIR) -> GatewayNaming:
        """A real gateway's names (no prefix), or those of one beside others (`prefix`)."""
        runtime = run_dir / f"{prefix}haproxy-{gateway}"
        if not prefix:
            return cls(gateway, HOST_NETNS, HOST_IFNAME, runtime)
        return cls(gateway, f"{prefix}g-{gateway}", ifname("hg-", prefix + gateway, "hg."), runtime)

    @property
    def owner(self) -> str:
        return gateway_owner(self.gateway)

    @property
    def haproxy(self) -> HaproxyPaths:
        return HaproxyPaths(self.runtime_dir)
