"""The lab's IPsec links: a charon per node, and the far side of every link (`FarSide`s).

How a link's addresses map onto the lab (prefix P, connection C = <enterprise>-<ipsec>):

  node side   the node's charon runs in its underlay namespace P-n-<node>, where its
              endpoint address is (the swanctl.conf's local_addrs); kernel-libipsec
              makes its `ipsec0` there. A host P-il-C stands inside local_ts: the
              last address of the first local_ts prefix (x.x.x.254 of a /24), behind
              a veth `il-C` whose node end has the address before it (a /30), so
              the underlay namespace routes for it (ip_forward) into the tunnel.
  far side    P-ir-C is plugged into the underlay bridge like a public node (port
              `ir-C`; `il.`/`ir.` and a hash when too long), at the link's
              `remote` address (a /32, on-link default route), and runs a
              strongSwan responder: the node's connection mirrored (local_ts and
              remote_ts swapped, same proposals and then strongSwan's defaults, so
              that a proposal changed by `lab apply` still meets one; the same
              PSK; the port of `remote_port` when there is one). A host P-ih-C
              stands behind it in the first remote_ts prefix, addressed like the
              local host.

Each charon runs with its own strongswan.conf, in a private mount namespace
with a private /run (its PID file is fixed at /run/charon.pid), its VICI socket
in the lab's node directory (`<nodes>/<node>.charon.vici`, where a node's plan
and apply find it: `node_setup`), started and stopped by PID like the lab's
other daemons. The links' secrets are taken from HERC_SECRET_<NAME> when set,
else made at random, into `<nodes>/ipsec.secrets.yaml` (0600), which the nodes'
plan and apply read as their --secrets, and the responders too.

`ipsec_far_sides` is the maker (lab/far_sides.py): `NodeCharons` (the secrets
file and the nodes' charons) first, then an `IpsecSite` per link. `lab up`
builds them before the nodes are applied; `lab plan|apply` adds the secrets
of new links before the nodes are planned, and `lab apply` builds a new
link's far side, and a changed one's afresh, before the nodes are applied (so
the responder answers the node's initiate). A link that did not change keeps
its responder and so the node's SAs: each link's description is recorded
next to its responder (`ir-C.site.json`, no secret value). A node's charon is
started where none runs in the node's namespace as it is now (a node that
`lab apply` re-created gets a new one), but only `lab up` gets that far for a
node's first link: the node's plan reads its charon. `lab check` pings between the two
hosts of each link (network "ipsec:C"); `lab exec ipsec:C:local|
ipsec:C:remote|ipsec:C:responder` runs a command there. IPv4 traffic
selectors only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets as random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hercc import ir
from hercc.backends.swanctl import connections
from hercc.backends.swanctl import local_addr as local_addr_of
from hercc.diagnostics import LabError
from hercc.ipsec_proposals import esp_of
from hercc.lab.daemons import Daemon, alive, start_daemon, stop_daemon, wait_alive
from hercc.lab.far_side import FarEndpoint, FarSide
from hercc.lab.topology import Topology
from hercc.lab.underlay import NS_SYSCTLS, TIMEOUT, has_link, ip_batch, netns_exists
from hercc.passes.secrets import env_name, read_secrets_file, resolve
from hercc.plan.ipsec_setup import IpsecSetup
from hercc.resources.ipsec import shared_id
from hercc.resources.naming import ifname
from hercc.state.ipsec import ViciSocket
from hercc.sysio.files import write_atomic
from hercc.sysio.process import run

__all__ = ["IpsecSite", "NodeCharons", "charon_socket", "ipsec_far_sides", "node_setup", "sites"]

CHARON = "/usr/lib/ipsec/charon"
PLUGINS = (
    "random nonce aes sha1 sha2 hmac md5 gmp gcm xcbc kdf openssl pem pkcs1 x509 pubkey "
    "kernel-libipsec kernel-netlink socket-default vici"
)
SECRETS_FILE = "ipsec.secrets.yaml"
SOCKET_MAX = 107  # sun_path, with its NUL


@dataclass(frozen=True)
class IpsecSite:
    """One link in the lab (see the module docstring): its responder and its two hosts."""

    connection: str
    node: str
    node_ns: str
    local_ns: str  # the host inside local_ts
    local_addr: str  # its address (/30)
    local_gw: str  # the node end of its veth (/30)
    far_ns: str  # the responder
    remote: str
    far_port: str  # its port on the underlay bridge
    remote_port: int  # where it listens for IKE (4500: NAT-T's own port, 500 too)
    local_if: str  # the node end of the local host's veth
    host_ns: str  # the host inside remote_ts
    host_addr: str
    host_gw: str
    tree: dict[str, object]  # the responder's connection
    secret: str
    underlay_ns: str
    directory: Path  # the lab's node directory: the responder's files, the secrets file

    def namespaces(self) -> tuple[str, ...]:
        return (self.far_ns, self.host_ns, self.local_ns)

    def build(self, created: list[str], daemons: list[Daemon]) -> None:
        """As the spec says now: kept while it runs as described (its responder holds the
        node's SAs), else made afresh (`lab apply`: a new or changed link)."""
        record = self.directory / f"ir-{self.connection}.site.json"
        was = json.loads(record.read_text()) if record.exists() else None
        kept = netns_exists(self.far_ns) and was == self._described()
        if kept and has_link(self.node_ns, self.local_if):  # (gone with a re-created node)
            return
        self._take_down(was, daemons)
        for ns in self.namespaces():
            _netns(ns, created)
        ul = f"link add ul netns {self.far_ns} type veth peer name {self.far_port}"
        ip_batch([ul, f"link set {self.far_port} master br0 up"], ns=self.underlay_ns)
        up = ["link set lo up", f"address add {self.remote}/32 dev ul", "link set ul up"]
        ip_batch([*up, "route add default dev ul"], ns=self.far_ns)
        _host_behind(self.far_ns, "lan", self.host_ns, self.host_addr, self.host_gw)
        _host_behind(self.node_ns, self.local_if, self.local_ns, self.local_addr, self.local_gw)
        name = f"ir-{self.connection}"
        daemons.append(start_charon(self.far_ns, self.directory, name, self.remote_port))
        file = str(self.directory / SECRETS_FILE)  # NodeCharons' (built first)
        key = {"id": shared_id(self.connection), "type": "IKE"}
        key["data"] = resolve([self.secret], file, os.environ)[self.secret]
        vici = ViciSocket(str(self.directory / f"{name}.charon.vici"))
        vici.request("load-shared", key)
        vici.request("load-conn", {self.connection: self.tree})
        write_atomic(record, json.dumps(self._described(), sort_keys=True), mode=0o600)

    def _described(self) -> dict[str, Any]:
        """What the link is, as recorded next to its responder (no secret value)."""
        fields = dataclasses.asdict(self)
        del fields["directory"]
        described: dict[str, Any] = json.loads(json.dumps(fields))  # as read back: no tuples
        return described

    def _take_down(self, was: dict[str, Any] | None, daemons: list[Daemon]) -> None:
        """What runs of this link (as `was` described it) and what holds its port names."""
        name = f"ir-{self.connection}"
        for d in [d for d in daemons if d.role == "charon" and d.name == name]:
            if not stop_daemon(d):
                raise LabError(f"the responder of {self.connection} (pid {d.pid}) did not exit")
            daemons.remove(d)
        ports = {(self.underlay_ns, self.far_port), (self.node_ns, self.local_if)}
        if was is not None:  # a namespace's veths go in the background: their names now
            ports |= {(was["underlay_ns"], was["far_port"]), (was["node_ns"], was["local_if"])}
        for ns, port in sorted(ports):
            if netns_exists(ns) and has_link(ns, port):
                ip_batch([f"link del {port}"], ns=ns)
        for ns in reversed(self.namespaces()):
            if netns_exists(ns):
                run(["ip", "netns", "del", ns], timeout=TIMEOUT, error=LabError)
        if was is not None and netns_exists(was["node_ns"]):  # the old responder's MAC, forgotten
            ip_batch([f"neigh flush to {was['remote']}"], ns=was["node_ns"])

    def prepare(self) -> None:
        """Nothing: the node's plan needs its charon (NodeCharons), not the responder."""

    def join(self) -> None:
        """Nothing: both hosts are routed by `build`."""

    def endpoints(self) -> tuple[FarEndpoint, ...]:
        """The two hosts ping each other through the tunnel."""
        net = f"ipsec:{self.connection}"
        local, remote = self.local_addr.split("/")[0], self.host_addr.split("/")[0]
        return (
            FarEndpoint(f"{net}:local", net, self.local_ns, (local,), self.node),
            FarEndpoint(f"{net}:remote", net, self.host_ns, (remote,), self.node),
        )

    def targets(self) -> dict[str, str]:
        return {f"ipsec:{self.connection}:responder": self.far_ns}


@dataclass(frozen=True)
class NodeCharons:
    """The nodes' end of the lab's IPsec links: their secrets file and a charon per node."""

    directory: Path
    secrets: tuple[str, ...]  # the links' secret names
    nodes: tuple[tuple[str, str], ...]  # (node, its underlay namespace) of the nodes with links

    def namespaces(self) -> tuple[str, ...]:
        return ()

    def build(self, created: list[str], daemons: list[Daemon]) -> None:
        """The secrets, and a charon for every node without one in its namespace as it is now
        (a node `lab apply` re-created has a new one): those that run keep the nodes' links."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.prepare()
        for node, ns in self.nodes:
            running = [d for d in daemons if d.role == "charon" and d.name == node]
            if any(_runs_in(d, ns) for d in running):
                continue
            for d in running:
                if not stop_daemon(d):
                    raise LabError(f"the charon of node {node} (pid {d.pid}) did not exit")
                daemons.remove(d)
            daemons.append(start_charon(ns, self.directory, node))

    def prepare(self) -> None:
        """The secrets of links added since (`lab plan|apply`): a node's plan resolves them."""
        _add_secrets(self.secrets, self.directory)

    def join(self) -> None:
        """Nothing: a node's apply loads its links into its charon."""

    def endpoints(self) -> tuple[FarEndpoint, ...]:
        return ()

    def targets(self) -> dict[str, str]:
        return {}


def _pair(ts: str, what: str) -> tuple[str, str]:
    """(host, gateway) addresses with /30 at the end of the first prefix of `ts`."""
    net = ipaddress.ip_network(ts, strict=False)
    if net.version != 4 or net.prefixlen > 30:
        raise LabError(f"the lab's IPsec hosts need an IPv4 {what} of /30 or wider, not {ts}")
    top = net.broadcast_address
    return f"{top - 1}/30", f"{top - 2}/30"


def _mirrored(name: str, link: ir.Ipsec, local: str) -> dict[str, object]:
    """The responder's side of `link` (the node's is at `local`)."""
    if link.cert is not None:  # its certificate would need the key of the spec's CA
        raise LabError(f"the lab's IPsec far side takes auth psk only, not {name}'s auth cert")
    child = {
        "local_ts": list(link.remote_ts),
        "remote_ts": list(link.local_ts),
        "esp_proposals": [*(esp_of(p) for p in link.proposals), "default"],
    }
    return {
        "version": "2",
        "local_addrs": [link.remote],
        "remote_addrs": [local],
        "proposals": [*link.proposals, "default"],  # (lab apply may change them)
        "local": {"auth": "psk", "id": link.remote},
        "remote": {"auth": "psk"},
        "children": {name: child},
    }


def sites(model: ir.IR, topo: Topology, directory: Path) -> list[IpsecSite]:
    """Every IPsec link of `model` in the lab `topo` with node directory `directory` (pure)."""
    out: list[IpsecSite] = []
    p = topo.prefix
    for node in sorted(model.nodes, key=lambda n: n.name):
        for name, link, _tree in connections(model, node):
            local_addr, local_gw = _pair(link.local_ts[0], "local_ts")
            host_addr, host_gw = _pair(link.remote_ts[0], "remote_ts")
            out.append(
                IpsecSite(
                    name,
                    node.name,
                    topo.host(node.name).ns,
                    f"{p}-il-{name}",
                    local_addr,
                    local_gw,
                    f"{p}-ir-{name}",
                    link.remote,
                    ifname("ir-", name, "ir."),
                    link.remote_port or 4500,
                    ifname("il-", name, "il."),
                    f"{p}-ih-{name}",
                    host_addr,
                    host_gw,
                    _mirrored(name, link, local_addr_of(node)),
                    link.secret,
                    topo.underlay_ns,
                    directory,
                )
            )
    return out


def ipsec_far_sides(model: ir.IR, topo: Topology, directory: Path) -> list[FarSide]:
    """The nodes' charons and every link's far side (see the module docstring)."""
    links = sites(model, topo, directory)
    if not links:
        return []
    names = tuple(sorted({i.secret for e in model.enterprise for i in e.ipsec}))
    nodes = tuple((n, topo.host(n).ns) for n in sorted({s.node for s in links}))
    return [NodeCharons(directory, names, nodes), *links]


def charon_socket(state_dir: str | Path, node: str) -> Path:
    return Path(state_dir) / f"{node}.charon.vici"


def node_setup(state_dir: str | Path, node: str) -> IpsecSetup:
    """Where a lab node's plan and apply find its charon and its links' secrets."""
    return IpsecSetup(str(charon_socket(state_dir, node)), str(Path(state_dir) / SECRETS_FILE))


# ---------------------------------------------------------------- up


def _conf(directory: Path, name: str, socket: Path, nat_port: int) -> Path:
    conf = directory / f"{name}.strongswan.conf"
    write_atomic(
        conf,
        "charon {\n"
        f"  load = {PLUGINS}\n"
        f"  port_nat_t = {nat_port}\n"
        "  retransmit_timeout = 1.0\n"
        "  filelog {\n    stderr {\n      default = 1\n      flush_line = yes\n    }\n  }\n"
        f"  plugins {{\n    vici {{\n      socket = unix://{socket}\n    }}\n  }}\n"
        "}\n"
        "swanctl {\n  load = random openssl pem pkcs1 x509 pubkey\n}\n",  # for `swanctl --uri`
        mode=0o600,
    )
    return conf


def start_charon(ns: str, directory: Path, name: str, nat_port: int = 4500) -> Daemon:
    """charon in `ns` with its own config, mount namespace and /run; ready when its VICI answers."""
    socket = directory / f"{name}.charon.vici"
    if len(str(socket)) > SOCKET_MAX:
        raise LabError(f"the lab directory is too deep for a VICI socket: {socket}")
    socket.unlink(missing_ok=True)
    conf = _conf(directory, name, socket, nat_port)
    argv = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        f"mount -t tmpfs tmpfs /run && exec {CHARON}",
    ]
    env = dict(os.environ, STRONGSWAN_CONF=str(conf))
    d = start_daemon("charon", name, ns, argv, directory / f"{name}.charon.log", env)
    wait_alive(d, socket.exists, seconds=15)
    return d


def _add_secrets(names: tuple[str, ...], directory: Path) -> None:
    """The secrets file with a value for each of `names`: those it has are kept."""
    file = directory / SECRETS_FILE
    values = read_secrets_file(str(file)) if file.exists() else {}
    missing = [n for n in names if n not in values]
    if not missing:
        return
    values |= {n: os.environ.get(env_name(n)) or random.token_urlsafe(24) for n in missing}
    text = "".join(f'{n}: "{v}"\n' for n, v in values.items())
    write_atomic(file, text, mode=0o600)


def _runs_in(d: Daemon, ns: str) -> bool:
    """`d` runs, in network namespace `ns` as it is now (not one deleted under it)."""
    try:
        here, there = os.stat(f"/proc/{d.pid}/ns/net"), os.stat(Path("/run/netns", ns))
    except OSError:
        return False
    return alive(d) and (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _netns(ns: str, created: list[str]) -> None:
    run(["ip", "netns", "add", ns], timeout=TIMEOUT, error=LabError)
    created.append(ns)
    run(["sysctl", "-qw", *NS_SYSCTLS], netns=ns, timeout=TIMEOUT, error=LabError)


def _host_behind(ns: str, ifname: str, host_ns: str, addr: str, gw: str) -> None:
    ip_batch([f"link add {ifname} type veth peer name eth0 netns {host_ns}"], ns=ns)
    ip_batch([f"address add {gw} dev {ifname}", f"link set {ifname} up"], ns=ns)
    gateway = gw.split("/")[0]
    cmds = ["link set lo up", f"address add {addr} dev eth0", "link set eth0 up"]
    ip_batch([*cmds, f"route add default via {gateway}"], ns=host_ns)
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=ns, timeout=TIMEOUT, error=LabError)
