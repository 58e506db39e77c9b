"""WireGuard backends: wg(8) setconf, wg-quick(8), systemd-networkd and netplan files.

Golden files under tests/golden/backends/ hold the exact expected output for a
small hand-built IR; HERCC_UPDATE_GOLDEN=1 rewrites them. The live tests feed
the rendered files to the real tools: `wg setconf` on a wireguard-go interface
in a private network namespace, `wg-quick strip`, and `netplan generate`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc import ir
from hercc.backends import BACKENDS, Backend, wireguard
from hercc.backends.memo import RenderMemo
from hercc.resources.naming import wg_ifname
from tests.goldentools import match_golden

GOLDEN = Path(__file__).resolve().parent / "golden" / "backends"

RENDERERS: tuple[Backend, ...] = tuple(
    BACKENDS[name] for name in ("wireguard", "wg-quick", "networkd", "netplan")
)

# Valid public keys (wg genkey | wg pubkey), fixed so the goldens are stable.
GOLDEN_KEYS: dict[str, str | None] = {
    "alpha": "hI2ROisNgA93SnirlZlweCls/+y5lBE6sVcEsh2xWi8=",
    "beta": "styZ+o2ZOVs9VReLUfKd75Q1qHfi19u8UzVhEzkyLzw=",
    "gamma": "qXO/nDfK8uqPqcBImh0fFItWhZQnoUPJQGQ2M44Vrw4=",
}

LAB = "laboratory-east"  # 15 characters: its interface name is cut to wg-laboratory-e


def peer(
    keys: dict[str, str | None],
    node: str,
    endpoint: str | None,
    allowed: tuple[str, ...],
    keepalive: int | None = None,
) -> ir.Peer:
    return ir.Peer(
        node=node,
        pubkey=keys[node],
        endpoint=endpoint,
        allowed_ips=allowed,
        keepalive_s=keepalive,
    )


def make_ir(keys: dict[str, str | None], reverse: bool = False) -> ir.IR:
    """prod (IPv4 + IPv6): alpha public relay, beta public (IPv6 endpoint), gamma nat.

    laboratory-east (IPv4 only): alpha and beta. `reverse` lists every
    node, membership and peer backwards, which must not change the output.
    """

    def order(items: tuple[ir.Peer, ...]) -> tuple[ir.Peer, ...]:
        return tuple(reversed(items)) if reverse else items

    alpha_ep, beta_ep = "192.0.2.10:51820", "[2001:db8::7]:51820"
    prod_all = ("10.20.0.0/16", "fd42:20::/48")
    beta_prod = ("10.20.1.0/24", "fd42:20:0:1::/64")
    gamma_prod = ("10.20.2.0/24", "fd42:20:0:2::/64")
    networks: tuple[ir.Network, ...] = (
        ir.Network(LAB, "10.30.0.0/16", None, 24, None, 51821, 1380, 25000, False),
        ir.Network("prod", "10.20.0.0/16", "fd42:20::/48", 24, 64, 51820, 1420, 25000, False),
    )
    alpha = ir.Node(
        "alpha",
        "public",
        True,
        keys["alpha"],
        (
            ir.Membership(
                LAB,
                "10.30.0.0/24",
                None,
                "10.30.0.1",
                None,
                51821,
                "192.0.2.10:51821",
                mtu=1380,
                peers=(peer(keys, "beta", "[2001:db8::7]:51821", ("10.30.1.0/24",)),),
            ),
            ir.Membership(
                "prod",
                "10.20.0.0/24",
                "fd42:20::/64",
                "10.20.0.1",
                "fd42:20::1",
                51820,
                alpha_ep,
                forwarding=True,
                peers=order(
                    (peer(keys, "beta", beta_ep, beta_prod), peer(keys, "gamma", None, gamma_prod))
                ),
            ),
        ),
    )
    beta = ir.Node(
        "beta",
        "public",
        False,
        keys["beta"],
        (
            ir.Membership(
                LAB,
                "10.30.1.0/24",
                None,
                "10.30.1.1",
                None,
                51821,
                "[2001:db8::7]:51821",
                mtu=1380,
                peers=(peer(keys, "alpha", "192.0.2.10:51821", ("10.30.0.0/24",)),),
            ),
            ir.Membership(
                "prod",
                "10.20.1.0/24",
                "fd42:20:0:1::/64",
                "10.20.1.1",
                "fd42:20:0:1::1",
                51820,
                beta_ep,
                peers=order(
                    (
                        peer(keys, "alpha", alpha_ep, prod_all),
                        peer(keys, "gamma", None, gamma_prod),
                    )
                ),
            ),
        ),
    )
    gamma = ir.Node(
        "gamma",
        "nat",
        False,
        keys["gamma"],
        (
            ir.Membership(
                "prod",
                "10.20.2.0/24",
                "fd42:20:0:2::/64",
                "10.20.2.1",
                "fd42:20:0:2::1",
                51820,
                None,
                peers=order(
                    (
                        peer(keys, "alpha", alpha_ep, prod_all, 25),
                        peer(keys, "beta", beta_ep, beta_prod, 25),
                    )
                ),
            ),
        ),
    )
    nodes: tuple[ir.Node, ...] = (alpha, beta, gamma)
    if reverse:
        nodes = tuple(
            ir.Node(n.name, n.kind, n.relay, n.pubkey, tuple(reversed(n.networks)))
            for n in reversed(nodes)
        )
        networks = tuple(reversed(networks))
    return ir.IR(
        networks=networks,
        nodes=nodes,
        workloads=(),
        underlay=ir.Underlay(10, 10, ()),
        gateways=(),
        services=(),
        dns=(),
        enterprise=(),
        fastpath="off",
        netflow=None,
    )


def render(backend: Backend, model: ir.IR) -> dict[str, str]:
    """One backend's files, node by node with one memo, as a build renders them."""
    memo = RenderMemo()
    files: dict[str, str] = {}
    for node in model.nodes:
        files.update(backend(model, node, memo))
    return files


def render_all(model: ir.IR) -> dict[str, str]:
    files: dict[str, str] = {}
    for backend in RENDERERS:
        out = render(backend, model)
        assert not set(out) & set(files), "two backends write the same path"
        files.update(out)
    return files


# --- pure tests --------------------------------------------------------------------------------


def test_golden_files_match_byte_for_byte() -> None:
    files = render_all(make_ir(GOLDEN_KEYS))
    match_golden(files, GOLDEN)


def test_expected_paths() -> None:
    files = render_all(make_ir(GOLDEN_KEYS))
    for node, network in [("alpha", "prod"), ("alpha", LAB), ("beta", "prod"), ("gamma", "prod")]:
        assert f"nodes/{node}/wireguard/{network}.conf" in files
        assert f"nodes/{node}/wg-quick/{network}.conf" in files
        assert f"nodes/{node}/networkd/50-hercules-{network}.netdev" in files
        assert f"nodes/{node}/networkd/50-hercules-{network}.network" in files
        assert f"nodes/{node}/netplan/{network}.yaml" in files
    assert not any(path.startswith("nodes/gamma/") and LAB in path for path in files)


def test_output_does_not_depend_on_input_order() -> None:
    assert render_all(make_ir(GOLDEN_KEYS)) == render_all(make_ir(GOLDEN_KEYS, reverse=True))
    for backend in RENDERERS:
        assert render(backend, make_ir(GOLDEN_KEYS)) == render(
            backend, make_ir(GOLDEN_KEYS, reverse=True)
        )


@pytest.mark.parametrize("backend", RENDERERS)
def test_unknown_peer_key_renders_nothing_for_that_node_and_network(
    backend: Backend,
) -> None:
    keys = dict(GOLDEN_KEYS, gamma=None)
    files = render(backend, make_ir(keys))
    # alpha and beta have gamma as a peer in prod: no file; gamma's own peers are known.
    assert not [
        p for p in files if "prod" in p.rsplit("/", 1)[1] and not p.startswith("nodes/gamma/")
    ]
    assert [p for p in files if p.startswith("nodes/gamma/")]
    assert [p for p in files if p.startswith("nodes/alpha/") and LAB in p]
    assert [p for p in files if p.startswith("nodes/beta/") and LAB in p]
    assert all("None" not in text for text in files.values())


def test_no_private_key_in_output() -> None:
    files = render_all(make_ir(GOLDEN_KEYS))
    for path, text in files.items():
        for line in text.splitlines():
            key = line.split("=", 1)[0].strip().lower()
            assert key != "privatekey", f"{path}: {line}"
            if path.endswith(".yaml") and line.strip().startswith("key:"):
                assert line.split(":", 1)[1].strip().strip('"').startswith("/etc/hercules/keys/"), (
                    line
                )
    interface = files["nodes/alpha/wireguard/prod.conf"].split("[Peer]")[0]
    assert [ln for ln in interface.splitlines() if ln and not ln.startswith("#")] == [
        "[Interface]",
        "ListenPort = 51820",
    ]


def test_addresses_use_the_network_range_prefix() -> None:
    model = make_ir(GOLDEN_KEYS)
    alpha = model.node("alpha")
    by_net = {m.network: m for m in alpha.networks}
    assert wireguard.addresses(model, by_net["prod"]) == ["10.20.0.1/16", "fd42:20::1/48"]
    assert wireguard.addresses(model, by_net[LAB]) == ["10.30.0.1/16"]


# --- live tests --------------------------------------------------------------------------------


def _need_wg_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and a TUN device for wireguard-go")
    for tool in ("wg", "wireguard-go", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def wg_interface(suffix: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """A wireguard-go interface in a private network namespace: yields (netns, ifname)."""
    name = f"hbk{os.getpid()}{suffix}"  # at most 3 + 7 + len(suffix) <= 15 characters
    sock = Path(f"/var/run/wireguard/{name}.sock")
    added = _run("ip", "netns", "add", name)
    assert added.returncode == 0, added.stderr
    proc: subprocess.Popen[bytes] | None = None
    log = tmp / f"wireguard-go-{name}.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", name, "wireguard-go", "-f", name],
                env={**os.environ, "WG_PROCESS_FOREGROUND": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None, f"wireguard-go exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"no UAPI socket after 10 s: {log.read_text()}"
            time.sleep(0.02)
        up = _run("ip", "-n", name, "link", "set", name, "up")
        assert up.returncode == 0, up.stderr
        yield name, name
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        _run("ip", "netns", "del", name)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()


def _parse_conf(text: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append((line, {}))
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        sections[-1][1][key] = value
    return sections


def _nets(value: str) -> set[str]:
    return {str(ipaddress.ip_network(v.strip(), strict=False)) for v in value.split(",") if v}


def _expected_peers(m: ir.Membership) -> dict[str, dict[str, object]]:
    return {
        str(p.pubkey): {
            "endpoint": p.endpoint,
            "allowed": {str(ipaddress.ip_network(a)) for a in p.allowed_ips},
            "keepalive": None if p.keepalive_s is None else str(p.keepalive_s),
        }
        for p in m.peers
    }


def _setconf_and_check(ns: str, dev: str, conf: Path, membership: ir.Membership) -> None:
    done = _run("ip", "netns", "exec", ns, "wg", "setconf", dev, str(conf))
    assert done.returncode == 0 and not done.stderr, f"wg setconf {conf}: {done.stderr}"
    shown = _run("ip", "netns", "exec", ns, "wg", "showconf", dev)
    assert shown.returncode == 0, shown.stderr
    sections = _parse_conf(shown.stdout)
    assert sections[0][0] == "[Interface]"
    assert sections[0][1].get("ListenPort") == str(membership.listen_port)
    got = {
        fields["PublicKey"]: {
            "endpoint": fields.get("Endpoint"),
            "allowed": _nets(fields.get("AllowedIPs", "")),
            "keepalive": fields.get("PersistentKeepalive"),
        }
        for title, fields in sections[1:]
        if title == "[Peer]"
    }
    assert got == _expected_peers(membership), shown.stdout


def _live_model() -> ir.IR:
    keys: dict[str, str | None] = {}
    for node in ("alpha", "beta", "gamma"):
        private = _run("wg", "genkey").stdout
        public = subprocess.run(
            ["wg", "pubkey"], input=private, capture_output=True, text=True, timeout=10, check=True
        )
        keys[node] = public.stdout.strip()
    return make_ir(keys)


def _memberships(model: ir.IR) -> Iterator[tuple[str, ir.Membership]]:
    for node in model.nodes:
        for m in node.networks:
            yield node.name, m


@pytest.mark.live
def test_wg_setconf_accepts_wireguard_files(tmp_path: Path) -> None:
    _need_wg_tools()
    model = _live_model()
    files = render(BACKENDS["wireguard"], model)
    with wg_interface("w", tmp_path) as (ns, dev):
        checked = 0
        for node, m in _memberships(model):
            conf = tmp_path / f"{node}-{m.network}.conf"
            conf.write_text(files[f"nodes/{node}/wireguard/{m.network}.conf"])
            _setconf_and_check(ns, dev, conf, m)
            checked += 1
        assert checked == 5


@pytest.mark.live
def test_wg_quick_files_strip_to_what_wg_setconf_accepts(tmp_path: Path) -> None:
    _need_wg_tools()
    if shutil.which("wg-quick") is None:
        pytest.skip("wg-quick is not installed")
    model = _live_model()
    files = render(BACKENDS["wg-quick"], model)
    with wg_interface("q", tmp_path) as (ns, dev):
        for node, m in _memberships(model):
            # wg-quick wants <ifname>.conf, not world-readable.
            folder = tmp_path / node
            folder.mkdir(mode=0o700, exist_ok=True)
            conf = folder / f"{wg_ifname(m.network)}.conf"
            conf.write_text(files[f"nodes/{node}/wg-quick/{m.network}.conf"])
            conf.chmod(0o600)
            stripped = _run("wg-quick", "strip", str(conf))
            assert stripped.returncode == 0 and not stripped.stderr, stripped.stderr
            for key in ("Address", "MTU", "PostUp"):
                assert f"\n{key} =" in conf.read_text()
                assert f"{key} =" not in stripped.stdout
            plain = tmp_path / f"{node}-{m.network}.stripped"
            plain.write_text(stripped.stdout)
            _setconf_and_check(ns, dev, plain, m)


def _ini_sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """systemd-style INI: repeated sections allowed, keys may repeat."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), []))
            continue
        key, value = line.split("=", 1)
        sections[-1][1].append((key.strip(), value.strip()))
    return sections


def _wg_peers(netdev: str) -> dict[str, tuple[str | None, frozenset[str], str | None]]:
    peers = {}
    for title, fields in _ini_sections(netdev):
        if title != "WireGuardPeer":
            continue
        d = dict(fields)
        allowed = frozenset(
            str(ipaddress.ip_network(a, strict=False))
            for k, v in fields
            if k == "AllowedIPs"
            for a in v.replace(",", " ").split()
        )
        peers[d["PublicKey"]] = (d.get("Endpoint"), allowed, d.get("PersistentKeepalive"))
    return peers


def _section(text: str, title: str) -> dict[str, str]:
    (fields,) = [dict(f) for t, f in _ini_sections(text) if t == title]
    return fields


def test_networkd_netdev_sections() -> None:
    files = render(BACKENDS["networkd"], make_ir(GOLDEN_KEYS))
    netdev = files["nodes/gamma/networkd/50-hercules-prod.netdev"]
    sections = _ini_sections(netdev)
    assert [t for t, _ in sections] == ["NetDev", "WireGuard", "WireGuardPeer", "WireGuardPeer"]
    assert dict(sections[0][1]) == {"Name": "wg-prod", "Kind": "wireguard", "MTUBytes": "1420"}
    assert dict(sections[1][1]) == {
        "ListenPort": "51820",
        "PrivateKeyFile": "/etc/hercules/keys/gamma.key",
    }
    assert _wg_peers(netdev)[str(GOLDEN_KEYS["beta"])] == (
        "[2001:db8::7]:51820",
        frozenset({"10.20.1.0/24", "fd42:20:0:1::/64"}),
        "25",
    )
    network = _ini_sections(files["nodes/alpha/networkd/50-hercules-prod.network"])
    assert network == [
        ("Match", [("Name", "wg-prod")]),
        (
            "Network",
            [("Address", "10.20.0.1/16"), ("Address", "fd42:20::1/48"), ("IPForward", "yes")],
        ),
    ]


@pytest.mark.live
def test_netplan_generate_accepts_netplan_files(tmp_path: Path) -> None:
    if shutil.which("netplan") is None:
        pytest.skip("netplan is not installed")
    model = make_ir(GOLDEN_KEYS)
    files = render(BACKENDS["netplan"], model)
    ours = render(BACKENDS["networkd"], model)
    for node in model.nodes:
        root = tmp_path / node.name
        etc = root / "etc" / "netplan"
        etc.mkdir(parents=True)
        for m in node.networks:
            target = etc / f"{m.network}.yaml"
            target.write_text(files[f"nodes/{node.name}/netplan/{m.network}.yaml"])
            target.chmod(0o600)
        done = _run("netplan", "generate", "--root-dir", str(root), timeout=60)
        assert done.returncode == 0, done.stderr
        assert not done.stderr.strip(), done.stderr
        out = root / "run" / "systemd" / "network"
        for m in node.networks:
            name = wg_ifname(m.network)
            netdevs = list(out.glob(f"*-{name}.netdev"))
            assert len(netdevs) == 1, sorted(p.name for p in out.iterdir())
            generated = netdevs[0].read_text()
            for p in m.peers:
                assert f"PublicKey={p.pubkey}" in generated
            assert f"PrivateKeyFile={wireguard.key_file(node.name)}" in generated
            # netplan's own networkd rendering agrees with networkd.py on every peer.
            mine = ours[f"nodes/{node.name}/networkd/50-hercules-{m.network}.netdev"]
            assert len(_wg_peers(generated)) == len(m.peers)
            assert _wg_peers(generated) == _wg_peers(mine)
            for section in ("NetDev", "WireGuard"):
                assert _section(generated, section) == _section(mine, section)
