"""Builds with keys: public keys in configs, secrets only in secrets/ (0600), never elsewhere."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from hercc.cli import main as cli
from tests.conftest import EXAMPLES

NODES = ("alpha", "beta", "gamma", "delta")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", path)
    return path


def build(spec: Path, out: Path, *extra: str) -> int:
    return cli.main(["build", str(spec), "-o", str(out), *extra])


def test_secrets_are_0600_unlisted_and_nowhere_else(spec: Path, tmp_path: Path) -> None:
    keys, out = tmp_path / "keys", tmp_path / "out"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    assert build(spec, out, "--keys", str(keys)) == 0
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    private = {n: (keys / f"{n}.key").read_text().strip() for n in NODES}
    for node in NODES:
        secret = out / "nodes" / node / "secrets" / f"{node}.key"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text().strip() == private[node]
        assert f"nodes/{node}/secrets/{node}.key" not in manifest
        for kind in ("wireguard/prod.conf", "wg-quick/prod.conf", "netplan/prod.yaml"):
            assert f"nodes/{node}/{kind}" in manifest
    public = json.loads((keys / "public.json").read_text())
    for path in manifest:
        text = (out / path).read_text()
        assert not any(key in text for key in private.values()), path
    gamma = (out / "nodes/gamma/wireguard/prod.conf").read_text()
    assert f"PublicKey = {public['beta']}" in gamma
    ir_text = (out / "ir.json").read_text()
    assert all(public[n] in ir_text for n in NODES)


def test_gateway_keys_go_to_the_gateways_secrets_only(spec: Path, tmp_path: Path) -> None:
    keys, out = tmp_path / "keys", tmp_path / "out"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    assert build(spec, out, "--keys", str(keys)) == 0
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    public = json.loads((keys / "public.json").read_text())
    for gw in ("gw-eu", "gw-us"):
        private = (keys / "gateways" / f"{gw}.key").read_text()
        secret = out / "gateways" / gw / "secrets" / f"{gw}.key"
        assert secret.read_text() == private
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
        assert f"gateways/{gw}/secrets/{gw}.key" not in manifest
        assert not any(private.strip() in (out / p).read_text() for p in manifest)
        assert public[f"gateway:{gw}"] in (out / "ir.json").read_text()
        tunnel = (out / "gateways" / gw / "wireguard" / "tunnel.conf").read_text()
        assert (
            f"PublicKey = {public['gamma']}" in tunnel or f"PublicKey = {public['delta']}" in tunnel
        )


def test_without_keys_no_wireguard_files(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert build(spec, out) == 0
    assert not list(out.rglob("wireguard/*.conf"))
    assert not list(out.rglob("secrets"))


def test_missing_key_is_an_error(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    spec.write_text(spec.read_text() + "\nnode omega {\n  network prod\n  endpoint 192.0.2.99\n}\n")
    assert build(spec, tmp_path / "out", "--keys", str(keys)) == 1
    assert "no key for node omega" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_psk_network_gets_one_shared_key_per_peer_pair(spec: Path, tmp_path: Path) -> None:
    spec.write_text(
        spec.read_text().replace("  keepalive 25s\n", "  keepalive 25s\n  psk       on\n")
    )
    keys, out = tmp_path / "keys", tmp_path / "out"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    assert build(spec, out, "--keys", str(keys)) == 0
    a = out / "nodes/alpha/secrets/psk/prod/beta.psk"
    b = out / "nodes/beta/secrets/psk/prod/alpha.psk"
    assert a.read_text() == b.read_text() and len(a.read_text().strip()) == 44
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    wgq = (out / "nodes/alpha/wg-quick/prod.conf").read_text()
    assert "preshared-key /etc/hercules/keys/psk/prod/beta.psk" in wgq
    netdev = (out / "nodes/alpha/networkd/50-hercules-prod.netdev").read_text()
    assert "PresharedKeyFile=/etc/hercules/keys/psk/prod/beta.psk" in netdev
    assert a.read_text().strip() not in (out / "nodes/alpha/wireguard/prod.conf").read_text()


def test_pinned_keys_need_no_keys_dir(tmp_path: Path) -> None:
    text = "network p {\n  range 10.1.0.0/16\n}\n"
    for i, key in enumerate(["A" * 43 + "=", "B" * 43 + "="]):
        text += f'node n{i} {{\n  network p\n  endpoint 192.0.2.{i + 1}\n  pubkey "{key}"\n}}\n'
    spec = tmp_path / "pinned.herc"
    spec.write_text(text)
    assert build(spec, tmp_path / "out") == 0
    conf = (tmp_path / "out/nodes/n0/wireguard/p.conf").read_text()
    assert "PublicKey = " + "B" * 43 + "=" in conf


def test_keys_without_gateway_keys_build_without_tunnel_files(spec: Path, tmp_path: Path) -> None:
    keys, out = tmp_path / "keys", tmp_path / "out"
    assert cli.main(["keys", "init", str(spec), "--keys", str(keys)]) == 0
    public = json.loads((keys / "public.json").read_text())
    nodes_only = {k: v for k, v in public.items() if not k.startswith("gateway:")}
    (keys / "public.json").write_text(json.dumps(nodes_only))
    shutil.rmtree(keys / "gateways")
    assert build(spec, out, "--keys", str(keys)) == 0
    assert (out / "nodes/gamma/wireguard/prod.conf").exists()
    assert not list(out.rglob("gw.*.conf"))  # the nodes' ends name the gateway's key
    assert (out / "gateways/gw-eu/wireguard/tunnel.conf").exists()  # its peers' keys are known
    assert (out / "gateways/gw-eu/haproxy.cfg").exists()
