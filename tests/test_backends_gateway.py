"""Gateway backends: haproxy.cfg, gateway.json, the tunnels' WireGuard files, nftables, zones.

Golden files under tests/golden/gateways/ hold the exact output for
tests/golden/gateways/spec.herc with fixed keys; HERCC_UPDATE_GOLDEN=1
rewrites them. The real tools check what they can: `haproxy -c`, `nft -c`,
`named-checkzone`, and `wg setconf` on a wireguard-go interface.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hercc import ir
from hercc.backends import GLOBAL_BACKENDS, render_all
from hercc.pipeline import compile_spec
from tests.goldentools import match_golden
from tests.test_backends_wireguard import _need_wg_tools, _parse_conf, wg_interface

GOLDEN = Path(__file__).resolve().parent / "golden" / "gateways"
GATEWAY_BACKENDS = (
    "gateway-tunnels", "gateway-units", "gateway-json", "haproxy", "nftables", "dns",
)  # fmt: skip


def _key(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


KEYS = {
    "alpha": _key(1),
    "beta": _key(2),
    "gamma": _key(5),
    "gateway:gw-eu": _key(3),
    "gateway:gw-us": _key(4),
}


def _model(pubkeys: dict[str, str] | None = KEYS) -> ir.IR:
    return compile_spec(str(GOLDEN / "spec.herc"), use_lock=False, pubkeys=pubkeys).ir


def _render(model: ir.IR) -> dict[str, str]:
    files = render_all(model, GATEWAY_BACKENDS)
    del files["ir.json"]
    return files


def test_golden_files_match_byte_for_byte() -> None:
    files = _render(_model())
    match_golden(files, GOLDEN / "out")


def test_expected_paths() -> None:
    assert set(_render(_model())) == {
        "dns/example.com.zone",
        *(f"gateways/{g}/{f}" for g in ("gw-eu", "gw-us") for f in ("haproxy.cfg", "gateway.json")),
        *(f"gateways/{g}/{d}/tunnel.conf" for g in ("gw-eu", "gw-us") for d in ("wireguard", "wg-quick")),
        *(
            f"gateways/{g}/{f}"
            for g in ("gw-eu", "gw-us")
            for f in ("networkd/50-hercules-tunnel.netdev", "networkd/50-hercules-tunnel.network",
                      "netplan/tunnel.yaml")
        ),
        *(
            f"nodes/{n}/{f}"
            for n, g in (("alpha", "gw-eu"), ("alpha", "gw-us"), ("beta", "gw-eu"),
                         ("beta", "gw-us"), ("gamma", "gw-eu"))
            for f in (f"wireguard/gw.{g}.conf", f"wg-quick/gw.{g}.conf", f"netplan/gw.{g}.yaml",
                      f"networkd/50-hercules-gw.{g}.netdev", f"networkd/50-hercules-gw.{g}.network")
        ),
        "nodes/alpha/nftables/prod.nft",
        "nodes/beta/nftables/prod.nft",
        "nodes/gamma/nftables/six.nft",
    }  # fmt: skip


def test_without_keys_only_the_wireguard_files_are_missing() -> None:
    files = _render(_model(pubkeys=None))
    assert not any(
        d in p for p in files for d in ("wireguard/", "wg-quick/", "networkd/", "netplan/")
    )
    assert "gateways/gw-eu/haproxy.cfg" in files and "dns/example.com.zone" in files


def test_render_all_and_build_select_them() -> None:
    model = _model()
    assert set(_render(model)) <= set(render_all(model))
    assert set(render_all(model, ["haproxy"])) == {
        "ir.json",
        "gateways/gw-eu/haproxy.cfg",
        "gateways/gw-us/haproxy.cfg",
    }


def test_node_renders_hold_the_node_ends_and_global_ones_the_rest() -> None:
    model = _model()
    beta = render_all(model, GATEWAY_BACKENDS, ["beta"])
    assert set(beta) == {"ir.json"} | {p for p in _render(model) if p.startswith("nodes/beta/")}
    gateway_side = {p for p in _render(model) if not p.startswith("nodes/")}
    assert set(GLOBAL_BACKENDS) <= set(GATEWAY_BACKENDS) and gateway_side


def test_tunnel_peers_reach_only_the_tunnel_addresses() -> None:
    model = _model()
    eu = next(g for g in model.gateways if g.name == "gw-eu")
    files = _render(model)
    node_side = _parse_conf(files["nodes/beta/wireguard/gw.gw-eu.conf"])
    assert node_side[1][1] == {
        "PublicKey": KEYS["gateway:gw-eu"],
        "Endpoint": "203.0.113.50:7443",
        "AllowedIPs": f"{eu.tunnel_address}/32, {eu.tunnel_address6}/128",
        "PersistentKeepalive": "25",
    }
    gateway_side = dict(_parse_conf(files["gateways/gw-eu/wireguard/tunnel.conf"])[2][1])
    assert "Endpoint" not in gateway_side and gateway_side["PublicKey"] == KEYS["beta"]
    beta = next(t for t in eu.tunnels if t.node == "beta")
    assert gateway_side["AllowedIPs"] == ", ".join(
        sorted(
            f"{f.tunnel_address}/{128 if ':' in f.tunnel_address else 32}" for f in beta.forwards
        )
    )


def test_haproxy_backends_have_one_server_per_replica() -> None:
    cfg = _render(_model())["gateways/gw-us/haproxy.cfg"]
    servers = [line.split()[1] for line in cfg.splitlines() if line.startswith("    server ")]
    assert servers == ["web", "web2", "web", "web2"]  # the http and the tcp (https) backends
    assert "    balance roundrobin" in cfg and "check inter 5000ms" in cfg
    assert "shop.example.com" in cfg and "Shop.Example.com" not in cfg  # host names match lowered


def test_zone_serial_and_records() -> None:
    zone = _render(_model())["dns/example.com.zone"]
    assert "example.com. 60 IN SOA ns1.example.net. hostmaster.example.com. 1 " in zone
    assert zone.count("IN A ") == 2 and zone.count("IN AAAA ") == 1


# --- the real tools -----------------------------------------------------------------------------


def _need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def _write(tmp_path: Path, files: dict[str, str], suffix: str) -> list[Path]:
    out = []
    for rel, text in sorted(files.items()):
        if rel.endswith(suffix):
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            out.append(path)
    return out


def test_haproxy_accepts_every_config(tmp_path: Path) -> None:
    haproxy = _need("haproxy")
    configs = _write(tmp_path, _render(_model()), "haproxy.cfg")
    assert len(configs) == 2
    for cfg in configs:
        done = subprocess.run(
            [haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_named_checkzone_accepts_the_zone(tmp_path: Path) -> None:
    checkzone = _need("named-checkzone")
    [zone] = _write(tmp_path, _render(_model()), ".zone")
    done = subprocess.run(
        [checkzone, "example.com", str(zone)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and "loaded serial 1" in done.stdout, done.stdout + done.stderr


def test_nft_accepts_the_rulesets(tmp_path: Path) -> None:
    nft = _need("nft")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root")
    rulesets = _write(tmp_path, _render(_model()), ".nft")
    assert len(rulesets) == 3
    for ruleset in rulesets:
        done = subprocess.run(
            [nft, "-c", "-f", str(ruleset)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.live
def test_wg_setconf_accepts_the_tunnel_files(tmp_path: Path) -> None:
    _need_wg_tools()
    files = _render(_model())
    confs = _write(tmp_path, {p: t for p, t in files.items() if "/wireguard/" in p}, ".conf")
    assert len(confs) == 7
    with wg_interface("g", tmp_path) as (ns, dev):
        for conf in confs:
            done = subprocess.run(
                ["ip", "netns", "exec", ns, "wg", "setconf", dev, str(conf)],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert done.returncode == 0 and not done.stderr, f"{conf}: {done.stderr}"
            shown = subprocess.run(
                ["ip", "netns", "exec", ns, "wg", "showconf", dev],
                capture_output=True,
                text=True,
                timeout=20,
            )
            peers = [s for s, _ in _parse_conf(shown.stdout) if s == "[Peer]"]
            assert len(peers) == sum(1 for s, _ in _parse_conf(conf.read_text()) if s == "[Peer]")


def test_netplan_generate_accepts_the_tunnel_files(tmp_path: Path) -> None:
    _need("netplan")
    files = _render(_model())
    yamls = {p: t for p, t in files.items() if "/netplan/" in p}
    assert len(yamls) == 7
    for rel, text in sorted(yamls.items()):
        root = tmp_path / rel.replace("/", "_")
        etc = root / "etc" / "netplan"
        etc.mkdir(parents=True)
        (etc / "tunnel.yaml").write_text(text)
        (etc / "tunnel.yaml").chmod(0o600)
        done = subprocess.run(
            ["netplan", "generate", "--root-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and not done.stderr.strip(), f"{rel}: {done.stderr}"
        [netdev] = (root / "run" / "systemd" / "network").glob("*.netdev")
        mine = files[rel.replace("netplan/", "networkd/50-hercules-").replace(".yaml", ".netdev")]
        peers = [line for line in netdev.read_text().splitlines() if line.startswith("PublicKey=")]
        assert peers == [line for line in mine.splitlines() if line.startswith("PublicKey=")]
