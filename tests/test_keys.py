"""WireGuard key management: hercc.keys and the `hercc keys` sub-commands."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from hercc import keys
from hercc.cli import main as cli
from hercc.diagnostics import OperationError
from hercc.pipeline import compile_spec
from tests.conftest import EXAMPLES

NODES = ("alpha", "beta", "delta", "gamma")
GATEWAYS = ("gateway:gw-eu", "gateway:gw-us")  # the reference spec's, as public.json names them
OWNERS = NODES + GATEWAYS
PINNED = base64.b64encode(bytes(range(32))).decode()  # any 32 bytes are a valid public key


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), mode_of(p))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", path)
    return path


def pin_gamma(spec: Path) -> None:
    text = spec.read_text()
    spec.write_text(text.replace("node gamma {\n", f'node gamma {{\n  pubkey "{PINNED}"\n', 1))


def test_init_creates_private_keys_and_public_json(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    report = keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    assert report.created == OWNERS
    assert report.kept == report.pinned == report.stale == ()
    assert mode_of(kdir) == 0o700
    public = json.loads((kdir / "public.json").read_text())
    assert sorted(public) == sorted(OWNERS)
    assert (kdir / "public.json").read_text() == json.dumps(public, indent=2, sort_keys=True) + "\n"
    for node in NODES:
        key_file = kdir / f"{node}.key"
        assert mode_of(key_file) == 0o600
        private = key_file.read_text()
        assert (
            private.endswith("\n") and len(base64.b64decode(private.strip(), validate=True)) == 32
        )
        assert keys.read_private_key(str(kdir), node) == private.strip()
        assert keys.pubkey_of(private) == public[node]
    for gw in ("gw-eu", "gw-us"):
        key_file = kdir / "gateways" / f"{gw}.key"
        assert mode_of(key_file) == 0o600 and mode_of(key_file.parent) == 0o700
        assert keys.pubkey_of(keys.read_gateway_key(str(kdir), gw)) == public[f"gateway:{gw}"]
    # reports hold names and paths, never key material
    assert not any(v in repr(report) for v in public.values())


def test_public_keys_match_wg_pubkey(spec: Path, tmp_path: Path) -> None:
    wg = shutil.which("wg")
    if wg is None:
        pytest.skip("wireguard-tools `wg` is not installed; cannot cross-check with wg pubkey")
    kdir = tmp_path / "keys"
    keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    public = keys.load_public_keys(str(kdir))
    for node in NODES:
        private = (kdir / f"{node}.key").read_text()
        out = subprocess.run(
            [wg, "pubkey"], input=private, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == public[node]


def test_wg_can_read_what_we_write(tmp_path: Path) -> None:
    wg = shutil.which("wg")
    if wg is None:
        pytest.skip("wireguard-tools `wg` is not installed")
    private = subprocess.run([wg, "genkey"], capture_output=True, text=True, check=True).stdout
    expected = subprocess.run(
        [wg, "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert keys.pubkey_of(private) == expected


def test_init_twice_changes_nothing(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    model = compile_spec(str(spec)).ir
    keys.init_keys(model, str(kdir))
    before = snapshot(kdir)
    mtime = (kdir / "public.json").stat().st_mtime_ns
    report = keys.init_keys(model, str(kdir))
    assert report.created == () and report.kept == OWNERS and not report.public_changed
    assert snapshot(kdir) == before
    assert (kdir / "public.json").stat().st_mtime_ns == mtime


def test_init_adds_only_missing_and_repairs_public_json(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    model = compile_spec(str(spec)).ir
    keys.init_keys(model, str(kdir))
    alpha = (kdir / "alpha.key").read_bytes()
    (kdir / "beta.key").unlink()
    (kdir / "public.json").unlink()
    report = keys.init_keys(model, str(kdir))
    assert report.created == ("beta",)
    assert report.kept == ("alpha", "delta", "gamma", *GATEWAYS)
    assert (kdir / "alpha.key").read_bytes() == alpha
    public = keys.load_public_keys(str(kdir))
    assert public["alpha"] == keys.pubkey_of(alpha.decode())


def test_pinned_pubkey_gets_no_private_file(spec: Path, tmp_path: Path) -> None:
    pin_gamma(spec)
    kdir = tmp_path / "keys"
    report = keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    assert report.pinned == ("gamma",)
    assert report.created == ("alpha", "beta", "delta", *GATEWAYS)
    assert not (kdir / "gamma.key").exists()
    assert keys.load_public_keys(str(kdir))["gamma"] == PINNED
    with pytest.raises(OperationError, match="gamma has no private key"):
        keys.rotate_key("gamma", str(kdir))


def test_pinned_pubkey_must_match_an_existing_private_key(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    pin_gamma(spec)
    with pytest.raises(OperationError, match="does not match the pubkey pinned for gamma"):
        keys.init_keys(compile_spec(str(spec)).ir, str(kdir))


def test_nodes_gone_from_the_spec_are_stale_and_kept(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    old = keys.load_public_keys(str(kdir))
    kdir.joinpath("zeta.key").write_text((kdir / "alpha.key").read_text())
    kdir.joinpath("zeta.key").chmod(0o600)
    text = spec.read_text()
    start = text.index("node delta {")
    end = text.index("}", start) + 1
    text = text[:start] + text[end:]
    text = text.replace("link delta beta { unreachable }", "")
    text = text.replace("node    delta\n  address 10.20.9.20", "node    alpha")
    spec.write_text(text)
    report = keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    assert report.stale == ("delta", "zeta")
    assert (kdir / "delta.key").exists()
    assert keys.load_public_keys(str(kdir))["delta"] == old["delta"]


def test_rotate_changes_exactly_one_key(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    before = snapshot(kdir)
    old_public = keys.load_public_keys(str(kdir))
    report = keys.rotate_key("beta", str(kdir))
    assert report.private_file == str(kdir / "beta.key")
    after = snapshot(kdir)
    assert sorted(after) == sorted(before)  # no temporary files left behind
    assert [f for f in after if after[f] != before[f]] == ["beta.key", "public.json"]
    assert mode_of(kdir / "beta.key") == 0o600
    new_public = keys.load_public_keys(str(kdir))
    assert {n for n in NODES if new_public[n] != old_public[n]} == {"beta"}
    assert new_public["beta"] == keys.pubkey_of(keys.read_private_key(str(kdir), "beta"))


def test_rotate_without_a_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="alpha has no private key"):
        keys.rotate_key("alpha", str(tmp_path / "keys"))
    with pytest.raises(OperationError, match="invalid node name"):
        keys.rotate_key("../etc/passwd", str(tmp_path / "keys"))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_private_key_readable_by_others_is_refused(spec: Path, tmp_path: Path, mode: int) -> None:
    kdir = tmp_path / "keys"
    model = compile_spec(str(spec)).ir
    keys.init_keys(model, str(kdir))
    (kdir / "alpha.key").chmod(mode)
    with pytest.raises(OperationError, match=f"mode {mode:04o}") as info:
        keys.read_private_key(str(kdir), "alpha")
    assert (kdir / "alpha.key").read_text().strip() not in str(info.value)
    with pytest.raises(OperationError, match=f"mode {mode:04o}"):
        keys.init_keys(model, str(kdir))
    (kdir / "alpha.key").chmod(0o400)  # stricter than 0600 is fine
    keys.read_private_key(str(kdir), "alpha")


def test_invalid_private_key_is_an_error(tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    kdir.mkdir()
    (kdir / "alpha.key").write_text(base64.b64encode(b"x" * 31).decode() + "\n")
    (kdir / "alpha.key").chmod(0o600)
    with pytest.raises(OperationError, match="invalid private key of alpha"):
        keys.read_private_key(str(kdir), "alpha")
    with pytest.raises(OperationError, match="invalid WireGuard private key"):
        keys.pubkey_of("not base64!")


@pytest.mark.parametrize(
    "content",
    [
        '{"alpha": "not-base64!"}',
        '{"alpha": "' + base64.b64encode(b"x" * 31).decode() + '"}',
        '{"alpha": 42}',
        '["alpha"]',
        "{not json",
    ],
)
def test_invalid_public_json_is_an_error(tmp_path: Path, content: str) -> None:
    kdir = tmp_path / "keys"
    kdir.mkdir()
    (kdir / "public.json").write_text(content)
    with pytest.raises(OperationError, match=r"public\.json"):
        keys.load_public_keys(str(kdir))


def test_missing_public_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="run `hercc keys init"):
        keys.load_public_keys(str(tmp_path))


def test_psk_files_are_private_stable_and_lazy(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    assert not (kdir / "psk").exists()  # init creates no PSK: they are made on demand
    psk = keys.psk_for(str(kdir), "prod", "beta", "alpha")
    path = kdir / "psk" / "prod" / "alpha--beta.psk"
    assert keys.ensure_psk(str(kdir), "prod", "alpha", "beta") == str(path)
    assert mode_of(path) == 0o600
    assert mode_of(kdir / "psk") == mode_of(kdir / "psk" / "prod") == 0o700
    assert len(base64.b64decode(psk, validate=True)) == 32
    assert path.read_text() == psk + "\n"
    assert keys.psk_for(str(kdir), "prod", "alpha", "beta") == psk
    assert keys.psk_for(str(kdir), "prod", "alpha", "gamma") != psk
    assert keys.psk_for(str(kdir), "other", "alpha", "beta") != psk
    path.chmod(0o644)
    with pytest.raises(OperationError, match="mode 0644"):
        keys.psk_for(str(kdir), "prod", "alpha", "beta")


def test_psk_pair_names_must_be_unambiguous(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="two different nodes"):
        keys.psk_for(str(tmp_path), "prod", "alpha", "alpha")
    with pytest.raises(OperationError, match="ambiguous"):
        keys.psk_for(str(tmp_path), "prod", "a--b", "c")


# ---------------------------------------------------------------- CLI wiring


def keys_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_init_rotate_show(spec: Path, tmp_path: Path) -> None:
    pin_gamma(spec)
    kdir = str(tmp_path / "keys")
    lock = Path(str(spec) + ".lock")
    assert not lock.exists()
    code, out, err = keys_cli("keys", "init", str(spec), "--keys", kdir)
    assert code == 0 and out == ""
    assert err == f"created 5 keys, kept 0, pinned 1 in {kdir}\n"
    assert not lock.exists()  # keys init never writes the lock
    code, _, err = keys_cli("keys", "init", str(spec), "--keys", kdir)
    assert err == f"created 0 keys, kept 5, pinned 1 in {kdir}\n"
    public = keys.load_public_keys(kdir)
    code, out, _ = keys_cli("keys", "show", "--keys", kdir)
    assert code == 0
    width = max(len(n) for n in OWNERS)
    assert out.splitlines() == [f"{n.ljust(width)}  {public[n]}" for n in sorted(OWNERS)]
    code, _, err = keys_cli("keys", "rotate", "alpha", "--keys", kdir)
    assert code == 0 and err.startswith("rotated the key of alpha")
    assert keys.load_public_keys(kdir)["alpha"] != public["alpha"]


def test_cli_errors(tmp_path: Path) -> None:
    code, _, err = keys_cli("keys", "init", str(tmp_path / "missing.herc"), "--keys", str(tmp_path))
    assert code == 2 and err == f"hercc: error: {tmp_path / 'missing.herc'}: no such file\n"
    code, _, err = keys_cli("keys", "show", "--keys", str(tmp_path / "nothing"))
    assert code == 1 and err.startswith("hercc: error: ")
    code, _, err = keys_cli("keys", "init", "spec.herc")  # --keys is required
    assert code == 2 and err.startswith("usage: hercc keys init")


def test_no_secrets_leak_through_the_summary(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    _, out, err = keys_cli("keys", "init", str(spec), "--keys", str(kdir))
    for node in NODES:
        secret = (kdir / f"{node}.key").read_text().strip()
        assert secret not in out + err
    assert os.listdir(kdir)  # sanity: keys were written


def test_rotate_a_gateway_key(spec: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    keys.init_keys(compile_spec(str(spec)).ir, str(kdir))
    before = keys.load_public_keys(str(kdir))
    report = keys.rotate_key("gateway:gw-eu", str(kdir))
    after = keys.load_public_keys(str(kdir))
    assert report.private_file == str(kdir / "gateways" / "gw-eu.key")
    assert {k for k in before if before[k] != after[k]} == {"gateway:gw-eu"}
    assert keys.pubkey_of(keys.read_gateway_key(str(kdir), "gw-eu")) == after["gateway:gw-eu"]
