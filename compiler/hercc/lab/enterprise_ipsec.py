"""The lab's IPsec links: a charon per node, and the far side of every link.

How a link's addresses map onto the lab (prefix P, connection C = <enterprise>-<ipsec>):

  node side   the node's charon runs in its underlay namespace P-n-<node>, where its
              endpoint address is (the swanctl.conf's local_addrs); kernel-libipsec
              makes its `ipsec0` there. A host P-il-C stands inside local_ts: the
              last address of the first local_ts prefix (x.x.x.254 of a /24), behind
              a veth `il<i>` whose node end has the address before it (a /30), so
              the underlay namespace routes for it (ip_forward) into the tunnel.
  far side    P-ir-C is plugged into the underlay bridge like a public node, at the
              link's `remote` address (a /32, on-link default route), and runs a
              strongSwan responder: the node's connection mirrored (local_ts and
              remote_ts swapped, same proposals and then strongSwan's defaults, so
              that a proposal changed by `lab apply` still meets one; the same
              PSK; the port of `remote_port` when there is one). A host P-ih-C stands behind it in
              the first remote_ts prefix, addressed like the local host.

Each charon runs with its own strongswan.conf, in a private mount namespace
with a private /run (its PID file is fixed at /run/charon.pid), its VICI socket
in the lab's node directory (`<nodes>/<node>.charon.vici`, where a node's plan
and apply find it: `node_setup`), started and stopped by PID like the lab's
other daemons. The links' secrets are taken from HERC_SECRET_<NAME> when set,
else made at random, into `<nodes>/ipsec.secrets.yaml` (0600), which the nodes'
plan and apply read as their --secrets.

`lab check` pings between the two hosts of each link (`endpoints`: network
"ipsec:C"); `lab exec ipsec:C:local|ipsec:C:remote` runs a command there.
IPv4 traffic selectors only.
"""

from __future__ import annotations

import ipaddress
import os
import secrets as random
from dataclasses import dataclass
from pathlib import Path

from hercc import ir
from hercc.backends.swanctl import connections
from hercc.backends.swanctl import local_addr as local_addr_of
from hercc.diagnostics import LabError
from hercc.ipsec_proposals import esp_of
from hercc.lab.daemons import Daemon, start_daemon, wait_alive
from hercc.lab.topology import Topology
from hercc.lab.underlay import NS_SYSCTLS, TIMEOUT, ip_batch
from hercc.passes.secrets import env_name
from hercc.plan.ipsec_setup import IpsecSetup
from hercc.resources.ipsec import shared_id
from hercc.state.ipsec import ViciSocket
from hercc.sysio.files import write_atomic
from hercc.sysio.process import run

__all__ = ["IpsecSite", "endpoints", "ipsec_up", "namespaces", "node_setup", "sites", "targets"]

CHARON = "/usr/lib/ipsec/charon"
PLUGINS = (
    "random nonce aes sha1 sha2 hmac md5 gmp gcm xcbc kdf openssl pem pkcs1 x509 pubkey "
    "kernel-libipsec kernel-netlink socket-default vici"
)
SECRETS_FILE = "ipsec.secrets.yaml"
SOCKET_MAX = 107  # sun_path, with its NUL


@dataclass(frozen=True)
class IpsecSite:
    """One link in the lab (see the module docstring)."""

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


def sites(model: ir.IR, topo: Topology) -> list[IpsecSite]:
    """Every IPsec link of `model` in the lab `topo` (pure)."""
    out: list[IpsecSite] = []
    p = topo.prefix
    port = 0
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
                    f"ir{port}",
                    link.remote_port or 4500,
                    f"il{port}",
                    f"{p}-ih-{name}",
                    host_addr,
                    host_gw,
                    _mirrored(name, link, local_addr_of(node)),
                    link.secret,
                )
            )
            port += 1
    return out


def namespaces(model: ir.IR, topo: Topology) -> list[str]:
    return [ns for s in sites(model, topo) for ns in (s.far_ns, s.host_ns, s.local_ns)]


def targets(model: ir.IR, topo: Topology) -> dict[str, str]:
    """`lab exec` names: ipsec:C:local (the host in local_ts), ipsec:C:remote, ipsec:C:responder."""
    out: dict[str, str] = {}
    for s in sites(model, topo):
        out |= {
            f"ipsec:{s.connection}:local": s.local_ns,
            f"ipsec:{s.connection}:remote": s.host_ns,
            f"ipsec:{s.connection}:responder": s.far_ns,
        }
    return out


def endpoints(model: ir.IR, topo: Topology) -> list[tuple[str, str, str, str, list[str], str]]:
    """`lab check`'s probes of each link, as the state file's Endpoint fields
    (name, kind, network, namespace, addresses, node): the two hosts ping each other."""
    out: list[tuple[str, str, str, str, list[str], str]] = []
    for s in sites(model, topo):
        net = f"ipsec:{s.connection}"
        local, remote = s.local_addr.split("/")[0], s.host_addr.split("/")[0]
        out.append((f"{net}:local", "ipsec", net, s.local_ns, [local], s.node))
        out.append((f"{net}:remote", "ipsec", net, s.host_ns, [remote], s.node))
    return out


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


def _secrets(model: ir.IR, directory: Path) -> dict[str, str]:
    names = sorted({i.secret for e in model.enterprise for i in e.ipsec})
    values = {n: os.environ.get(env_name(n)) or random.token_urlsafe(24) for n in names}
    text = "".join(f'{n}: "{v}"\n' for n, v in values.items())
    write_atomic(directory / SECRETS_FILE, text, mode=0o600)
    return values


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


def ipsec_up(
    model: ir.IR, topo: Topology, state_dir: Path, created: list[str], daemons: list[Daemon]
) -> None:
    """Build every link's far side and hosts, and a charon per node with links.

    Namespaces go into `created` and processes into `daemons` as soon as they
    exist, so the caller's teardown removes them.
    """
    links = sites(model, topo)
    if not links:
        return
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    values = _secrets(model, state_dir)
    for s in links:
        for ns in (s.far_ns, s.host_ns, s.local_ns):
            _netns(ns, created)
        ul = f"link add ul netns {s.far_ns} type veth peer name {s.far_port}"
        ip_batch([ul, f"link set {s.far_port} master br0 up"], ns=topo.underlay_ns)
        up = ["link set lo up", f"address add {s.remote}/32 dev ul", "link set ul up"]
        ip_batch([*up, "route add default dev ul"], ns=s.far_ns)
        _host_behind(s.far_ns, "lan", s.host_ns, s.host_addr, s.host_gw)
        _host_behind(s.node_ns, s.local_if, s.local_ns, s.local_addr, s.local_gw)
        d = start_charon(s.far_ns, state_dir, f"ir-{s.connection}", s.remote_port)
        daemons.append(d)
        _respond(ViciSocket(str(state_dir / f"ir-{s.connection}.charon.vici")), s, values)
    for node in sorted({s.node for s in links}):
        ns = topo.host(node).ns
        daemons.append(start_charon(ns, state_dir, node))


def _respond(vici: ViciSocket, s: IpsecSite, values: dict[str, str]) -> None:
    key = {"id": shared_id(s.connection), "type": "IKE", "data": values[s.secret]}
    vici.request("load-shared", key)
    vici.request("load-conn", {s.connection: s.tree})
