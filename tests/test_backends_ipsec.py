"""IPsec links as swanctl.conf, their keys, and their proposals, checked by a real charon.

Golden files under tests/golden/ipsec/ hold the exact output for reference.herc
and a spec of edge cases (HERCC_UPDATE_GOLDEN=1 rewrites them). A throwaway
charon (tests/strongswan.py) loads every generated swanctl.conf, with and
without its secrets file, and the output of swanctl is read line by line: it
exits 0 on some errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hercc import codes, ipsec_proposals
from hercc.cli import main as cli
from hercc.diagnostics import OperationError
from hercc.passes import secrets
from tests import strongswan
from tests.conftest import EXAMPLES, errors_of
from tests.goldentools import match_golden

GOLDEN = Path(__file__).resolve().parent / "golden" / "ipsec"
SECRET = 'not "so" secret\\ #1'  # quotes, a backslash and a # travel base64-encoded

EDGES = """
network prod { range 10.20.0.0/16 }
node beta { network prod; endpoint 192.0.2.11 }
node gamma { network prod; nat }
enterprise hq {
  ipsec branch {
    node beta; remote 192.0.2.254:4501; local_ts 10.20.0.0/16, 10.30.0.0/16
    remote_ts 172.16.0.0/12; auth psk secret("hq-branch-psk")
    proposals "aes128gcm16-prfsha256-ecp256", "aes256-sha384-modp3072"
  }
}
enterprise partner {
  ipsec dc { node beta; remote 198.51.100.9; local_ts 10.20.1.0/24; remote_ts 10.99.0.0/16; auth psk secret("dc") }
  ipsec road { node gamma; remote 203.0.113.5; local_ts 10.20.2.0/24; remote_ts 10.98.0.0/16; auth psk secret("dc") }
}
"""


def _build(tmp: Path, spec: Path, secrets: dict[str, str] | None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "out"
    args = ["build", str(spec), "-o", str(out), "--backend", "ipsec"]
    if secrets is not None:
        file = tmp / "secrets.yaml"
        file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in secrets.items()))
        file.chmod(0o600)
        args += ["--secrets", str(file)]
    assert cli.main(args) == 0
    return out


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    edges = tmp_path_factory.mktemp("edges") / "edges.herc"
    edges.write_text(EDGES)
    return {"reference": EXAMPLES / "reference.herc", "edges": edges}


def _tree(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.parent.name in ("ipsec", "secrets")
    }


def test_golden_files_match_byte_for_byte(specs: dict[str, Path], tmp_path: Path) -> None:
    files: dict[str, str] = {}
    for name, spec in specs.items():
        secrets = {"hq-branch-psk": SECRET, "dc": "dc-key"}
        out = _build(tmp_path / name, spec, secrets)
        files |= {f"{name}/{rel}": text for rel, text in _tree(out).items()}
    match_golden(files, GOLDEN)


def test_secrets_only_with_the_flag_and_never_elsewhere(
    specs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _build(tmp_path / "plain", specs["edges"], None)
    assert not list(plain.rglob("secrets")), "no --secrets: no secrets directory"
    out = _build(tmp_path / "with", specs["edges"], {"hq-branch-psk": SECRET, "dc": "dc-key"})
    secrets = sorted(out.rglob("ipsec.secrets.conf"))
    assert [str(p.relative_to(out)) for p in secrets] == [
        "nodes/beta/secrets/ipsec.secrets.conf",
        "nodes/gamma/secrets/ipsec.secrets.conf",
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in secrets)
    assert "dc-key" not in capsys.readouterr().err
    assert "secrets" not in (out / "manifest.json").read_text()
    for path in out.rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            text = path.read_text()
            assert "dc-key" not in text and "so\\" not in text, path


def test_missing_secret_and_loose_file_are_refused(
    specs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(AssertionError):
        _build(tmp_path / "a", specs["edges"], {"hq-branch-psk": SECRET})  # no "dc"
    err = capsys.readouterr().err
    assert 'missing secret "dc"' in err and "HERC_SECRET_DC" in err and "so\\" not in err
    loose = tmp_path / "loose.yaml"
    loose.write_text("dc: x\nhq-branch-psk: y\n")
    loose.chmod(0o644)
    args = ["build", str(specs["edges"]), "-o", str(tmp_path / "b"), "--secrets", str(loose)]
    assert cli.main(args) != 0
    assert not (tmp_path / "b").exists()


def test_secret_from_the_environment(
    specs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERC_SECRET_HQ_BRANCH_PSK", "from-env")
    out = _build(tmp_path, specs["reference"], {})
    text = (out / "nodes/beta/secrets/ipsec.secrets.conf").read_text()
    assert "secret = 0sZnJvbS1lbnY=" in text  # base64 of from-env


GOOD = [
    "aes256-sha256-modp2048",
    "aes128-sha1-modp1024",
    "aes128gcm16-prfsha256-ecp256",
    "chacha20poly1305-prfsha256-x25519",
    "aes256ctr-sha512-prfsha512-modp4096-ecp384",
    "3des-md5-modp1536",
    "aes256-sha256-modp2048-esn",  # charon takes esn in IKE proposals, and ignores it
    "default",
]
BAD = {
    "aes256-sha265-modp2048": "knows no IKE algorithm",
    "aes256-modp2048": "needs an integrity algorithm",
    "aes256-sha256": "needs a Diffie-Hellman group",
    "sha256-modp2048": "no encryption algorithm",
    "aes256gcm16-aes256-sha256-modp2048": "AEAD and classic",
    "aes128gcm16-ecp256": "needs a PRF",
}


@pytest.mark.parametrize("proposal", GOOD)
def test_table_accepts(proposal: str) -> None:
    assert ipsec_proposals.problem(proposal) is None


@pytest.mark.parametrize(("proposal", "why"), BAD.items())
def test_table_refuses(proposal: str, why: str) -> None:
    assert why in (ipsec_proposals.problem(proposal) or "")


def test_bad_proposal_is_e118_at_its_span(tmp_path: Path) -> None:
    text = EDGES.replace('"aes256-sha384-modp3072"', '"aes256-sha384-modp3073"')
    [diag] = errors_of(tmp_path, text)
    line = next(i for i, x in enumerate(text.splitlines(), 1) if "modp3073" in x)
    col = text.splitlines()[line - 1].index('"aes256-sha384-modp3073"') + 1
    assert diag.code == codes.BAD_PROPOSAL
    assert (diag.span.line, diag.span.col) == (line, col)
    assert 'no IKE algorithm "modp3073"' in diag.message


def _check_load(c: strongswan.Charon, conf: Path, conns: list[str], secrets: list[str]) -> None:
    done = c.load(conf)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert not [x for x in out.splitlines() if strongswan.FAILED.search(x)], out
    for name in conns:
        assert f"loaded connection '{name}'" in out, out
    assert f"successfully loaded {len(conns)} connections" in out, out
    for name in secrets:
        assert f"loaded ike secret 'ike-{name}'" in out, out
    if not secrets:
        assert "no files found matching" in out, out  # the include, before --secrets
    assert sorted(c.connections()) == sorted(conns)


@pytest.mark.skipif(strongswan.available() is not None, reason=str(strongswan.available()))
def test_real_charon_loads_every_generated_swanctl_conf(
    specs: dict[str, Path], tmp_path: Path
) -> None:
    lab_spec = Path(__file__).parent / "lab_ipsec.herc"  # tests/test_ipsec_live.py's
    with strongswan.charon(tmp_path) as c:
        for name, spec in {**specs, "lab": lab_spec}.items():
            for with_secrets in (False, True):
                values = {"hq-branch-psk": SECRET, "dc": "dc-key"} if with_secrets else None
                out = _build(tmp_path / f"{name}-{with_secrets}", spec, values)
                for conf in sorted(out.glob("nodes/*/ipsec/swanctl.conf")):
                    conns = re.findall(r"^  (\S+) \{$", conf.read_text(), re.MULTILINE)
                    assert conns, conf
                    _check_load(c, conf, conns, conns if with_secrets else [])


@pytest.mark.skipif(strongswan.available() is not None, reason=str(strongswan.available()))
def test_real_charon_agrees_with_the_proposal_table(tmp_path: Path) -> None:
    """One connection per proposal: charon loads those the table accepts, refuses the others."""
    proposals = [*GOOD, *BAD]
    lines = ["connections {"]
    for i, p in enumerate(proposals):
        lines += [f"  c{i} {{", "    remote_addrs = 192.0.2.1", f"    proposals = {p}"]
        lines += ["    local {\n      auth = psk\n    }", "    remote {\n      auth = psk\n    }"]
        lines += [
            "    children {",
            f"      c{i} {{",
            f"        esp_proposals = {ipsec_proposals.esp_of(p)}",
        ]
        lines += ["      }", "    }", "  }"]
    conf = tmp_path / "swanctl.conf"
    conf.write_text("\n".join([*lines, "}"]) + "\n")
    with strongswan.charon(tmp_path) as c:
        done = c.load(conf)
        out = done.stdout + done.stderr
        for i, p in enumerate(proposals):
            if p in GOOD:
                assert f"loaded connection 'c{i}'" in out, (p, out)
            else:
                assert f"loading connection 'c{i}' failed" in out, (p, out)


def test_outputs_doc_shows_the_build_of_the_reference(
    specs: dict[str, Path], tmp_path: Path
) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "outputs.md").read_text()
    conf = (
        _build(tmp_path, specs["reference"], None) / "nodes/beta/ipsec/swanctl.conf"
    ).read_text()
    assert f"```\n{conf}```" in doc


def _secrets_file(tmp: Path, text: str, mode: int = 0o600) -> str:
    path = tmp / "s.yaml"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_secret_values_stay_as_written(tmp_path: Path) -> None:
    path = _secrets_file(tmp_path, "a: 0x1F\nb: 012\nc-d: yes\n")
    env = {"HERC_SECRET_E_F": "from-env", "HERC_SECRET_A": "file-wins"}
    assert secrets.resolve(["a", "b", "c-d", "e-f"], path, env) == {
        "a": "0x1F",
        "b": "012",
        "c-d": "yes",
        "e-f": "from-env",
    }


@pytest.mark.parametrize(
    ("text", "mode", "why"),
    [
        ("a: x\n", 0o640, "its mode is 0640, not 0600"),
        ("- a\n- b\n", 0o600, "must map names to values"),
        ("a: [x]\n", 0o600, "must map names to values"),
        ("a: 'x\n", 0o600, "is not YAML at line"),
    ],
)
def test_secrets_file_refused(tmp_path: Path, text: str, mode: int, why: str) -> None:
    with pytest.raises(OperationError, match=why) as info:
        secrets.resolve(["a"], _secrets_file(tmp_path, text, mode), {})
    assert "'x" not in str(info.value)


def test_secrets_file_may_not_be_a_symlink(tmp_path: Path) -> None:
    target = _secrets_file(tmp_path, "a: x\n")
    (tmp_path / "link.yaml").symlink_to(target)
    with pytest.raises(OperationError, match="cannot read"):
        secrets.resolve(["a"], str(tmp_path / "link.yaml"), {})


def test_bad_proposal_in_the_yaml_form_is_e118_too(tmp_path: Path) -> None:
    text = (EXAMPLES / "reference.herc.yaml").read_text()
    bad = text.replace("proposals: aes256-sha256-modp2048", "proposals: aes256-sha256-modp2049")
    assert bad != text
    [diag] = errors_of(tmp_path, bad, "spec.herc.yaml")
    assert diag.code == codes.BAD_PROPOSAL and "modp2049" in diag.message
    line = next(i for i, x in enumerate(bad.splitlines(), 1) if "modp2049" in x)
    assert diag.span.line == line


def test_build_node_needs_only_that_nodes_secrets(specs: dict[str, Path], tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("dc: only-gamma-needs-this\n")
    file.chmod(0o600)
    out = tmp_path / "out"
    args = ["build", str(specs["edges"]), "-o", str(out), "--node", "gamma", "--secrets", str(file)]
    assert cli.main(args) == 0
    assert [str(p.relative_to(out)) for p in sorted(out.rglob("ipsec.secrets.conf"))] == [
        "nodes/gamma/secrets/ipsec.secrets.conf"
    ]
