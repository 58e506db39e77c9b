"""The lab's underlay: what stands in for the machines and the network between them.

From a topology (hercc.lab.topology): the underlay namespace and its bridge,
one underlay namespace per node with its address and default route, a NAT
router (nftables masquerade) per nat node, and drop rules for `unreachable`
links, mostly as one `ip -batch` per namespace. Kept apart from the harness
(hercc.lab.harness), which runs the nodes' overlays and the probes on top:
the underlay is built by plain commands, not planned or applied like a
node. `lab apply` (hercc.lab.overlay) adds and removes whole nodes with
`add_hosts` and `remove_hosts`, and rewrites drop rules with `set_block`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hercc.diagnostics import LabError
from hercc.lab.topology import Block, Host, Topology, uplinks
from hercc.sysio.process import run

NS_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
    "net.ipv4.conf.all.accept_redirects=0",
    "net.ipv4.conf.default.accept_redirects=0",
    "net.ipv6.conf.all.accept_redirects=0",
    "net.ipv6.conf.default.accept_redirects=0",
)
TIMEOUT = 10.0  # seconds, for one command
Station = tuple[str, str, str, str | None]  # a namespace on the bridge: ns, port, address, address6


def ip_batch(lines: Sequence[str], *, ns: str | None = None, timeout: float = 20.0) -> None:
    """Run iproute2 commands in one process (`ip -batch -`), stopping at the first error."""
    if not lines:
        return
    argv = ["ip"] if ns is None else ["ip", "-n", ns]
    run([*argv, "-batch", "-"], input="\n".join(lines) + "\n", timeout=timeout, error=LabError)


def build_underlay(t: Topology, created: list[str]) -> None:
    """Create the underlay of `t`; each namespace goes into `created` as soon as it exists.

    So a failure halfway leaves the caller the list of what to remove.
    """
    add_namespace(t.underlay_ns, created)
    run(["sysctl", "-qw", *NS_SYSCTLS], netns=t.underlay_ns, timeout=TIMEOUT, error=LabError)
    ip_batch(["link set lo up", "link add br0 type bridge", "link set br0 up"], ns=t.underlay_ns)
    add_hosts(t, t.hosts, created)
    add_public(t, created)


def add_public(t: Topology, created: list[str]) -> None:
    """Plug the gateways' and the internet namespace into the bridge (hercc.lab.public):
    each at its public addresses, with an on-link default route, like a public node."""
    stations: list[Station] = [(g.ns, g.port, g.address, g.address6) for g in t.gateways]
    if t.internet is not None:
        i = t.internet
        stations.append((i.ns, i.port, f"{i.address}/32", f"{i.address6}/128"))
    add_stations(t.underlay_ns, stations, created)


def add_stations(underlay_ns: str, stations: Sequence[Station], created: list[str]) -> None:
    """Plug namespaces into the bridge at their addresses (ns, bridge port, address, address6)."""
    for ns, *_ in stations:
        add_namespace(ns, created)
        run(["sysctl", "-qw", *NS_SYSCTLS], netns=ns, timeout=TIMEOUT, error=LabError)
    ip_batch(
        [
            f"link add ul netns {ns} type veth peer name {port} netns {underlay_ns}"
            for ns, port, *_ in stations
        ]
    )
    ip_batch([f"link set {port} master br0 up" for _, port, *_ in stations], ns=underlay_ns)
    for ns, _, address, address6 in stations:
        cmds = ["link set lo up", f"address add {address} dev ul", "link set ul up"]
        cmds += ["route add default dev ul"]
        if address6 is not None:
            cmds += [f"address add {address6} dev ul nodad", "route add ::/0 dev ul"]
        ip_batch(cmds, ns=ns)


def add_hosts(t: Topology, hosts: Sequence[Host], created: list[str]) -> None:
    """Plug `hosts` of `t` into its running underlay: namespaces, uplinks, NAT, drop rules."""
    spaces = [ns for h in hosts for ns in (h.ns, h.router_ns) if ns is not None]
    for ns in spaces:
        add_namespace(ns, created)
    for ns in spaces:
        run(["sysctl", "-qw", *NS_SYSCTLS], netns=ns, timeout=TIMEOUT, error=LabError)
    ip_batch(
        [
            f"link add {v.if_a} netns {v.ns_a} type veth peer name {v.if_b} netns {v.ns_b}"
            for h in hosts
            for v in uplinks(h, t.underlay_ns)
        ]
    )
    batches: dict[str, list[str]] = {ns: ["link set lo up"] for ns in spaces}
    batches[t.underlay_ns] = [f"link set {h.port} master br0 up" for h in hosts]
    for h in hosts:
        cmds = batches[h.ns]
        cmds += [f"address add {h.address} dev ul", "link set ul up"]
        if h.gateway is None:
            cmds.append("route add default dev ul")
        else:
            cmds.append(f"route add default via {h.gateway} dev ul")
        if h.router_ns is not None:
            batches[h.router_ns] += [
                f"address add {h.router_inside} dev lan",
                f"address add {h.router_outside} dev wan",
                "link set lan up",
                "link set wan up",
                "route add default dev wan",
            ]
    for ns, cmds in batches.items():
        ip_batch(cmds, ns=ns)
    for h in hosts:
        if h.router_ns is not None:
            forward = ["sysctl", "-qw", "net.ipv4.ip_forward=1"]
            run(forward, netns=h.router_ns, timeout=TIMEOUT, error=LabError)
            _nft(
                h.router_ns,
                "table ip herclab_nat {\n"
                "  chain postrouting {\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                '    oifname "wan" masquerade\n'
                "  }\n"
                "}\n",
            )
    mine = set(spaces)
    for b in t.blocks:
        if b.ns in mine:
            set_block(b.ns, b)


def remove_hosts(hosts: Sequence[Host]) -> list[str]:
    """Delete the namespaces of `hosts` (their uplinks go with them); what could not be."""
    namespaces = [ns for h in hosts for ns in (h.router_ns, h.ns) if ns is not None]
    return [error for ns in namespaces if (error := delete_namespace(ns)) is not None]


def netns_exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def has_link(ns: str, ifname: str) -> bool:
    """Whether namespace `ns` has an interface `ifname`."""
    done = run(
        ["ip", "-n", ns, "link", "show", ifname], check=False, timeout=TIMEOUT, error=LabError
    )
    return done.returncode == 0


def add_namespace(ns: str, created: list[str]) -> None:
    """A new namespace `ns`, recorded in `created`; LabError if it is there already."""
    if netns_exists(ns):
        raise LabError(f"namespace {ns} already exists (another lab with prefix?)")
    run(["ip", "netns", "add", ns], timeout=TIMEOUT, error=LabError)
    created.append(ns)


def delete_namespace(ns: str, timeout: float = TIMEOUT) -> str | None:
    """Delete namespace `ns` if it is there; why it could not be, or None."""
    if not netns_exists(ns):
        return None
    done = run(["ip", "netns", "del", ns], check=False, timeout=timeout, error=LabError)
    if done.returncode != 0 and netns_exists(ns):
        return f"ip netns del {ns}: {done.stderr.strip()}"
    return None


def set_block(ns: str, b: Block | None) -> None:
    """Replace the drop rules of an `unreachable` link in `ns` by those of `b` (None: none)."""
    script = "table ip herclab_block {}\ndelete table ip herclab_block\n"  # gone, if it was there
    if b is not None:
        addrs = ", ".join(b.peers)
        chains = [
            ("input", f"ip saddr {{ {addrs} }} drop"),
            ("output", f"ip daddr {{ {addrs} }} drop"),
        ]
        if b.router:
            chains.append(
                ("forward", f"ip saddr {{ {addrs} }} drop\n    ip daddr {{ {addrs} }} drop")
            )
        script += (
            "table ip herclab_block {\n"
            + "".join(
                f"  chain {hook} {{\n"
                f"    type filter hook {hook} priority filter; policy accept;\n"
                f"    {rule}\n"
                "  }\n"
                for hook, rule in chains
            )
            + "}\n"
        )
    _nft(ns, script)


def _nft(ns: str, script: str) -> None:
    run(["nft", "-f", "-"], netns=ns, input=script, timeout=TIMEOUT, error=LabError)
