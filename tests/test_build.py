"""hercc build/check through the CLI: outputs, determinism, atomicity, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.schemas_check import validate_ir
from tests.clitools import tree
from tests.conftest import EXAMPLES


def run(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", path)
    return path


def test_check_exits_0_and_writes_nothing(spec: Path) -> None:
    before = sorted(os.listdir(spec.parent))
    assert run("check", str(spec)) == 0
    assert sorted(os.listdir(spec.parent)) == before


ZONE_SPEC = """network prod { range 10.20.0.0/16 }

node alpha {
  network  prod
  endpoint 192.0.2.10
}

workload web { node alpha }

gateway gw-eu { address 203.0.113.50 }

service shop {
  workload web
  port     8080
  expose   https "shop.example.com" via gw-eu
}

dns example.com {
  ttl        60
  nameserver ns1.example.net
}
"""


def test_build_writes_a_zone_served_from_outside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "zone.herc"
    spec.write_text(ZONE_SPEC)
    assert run("build", str(spec), "-o", str(tmp_path / "out")) == 0
    assert "warning" not in capsys.readouterr().err
    zone = (tmp_path / "out" / "dns" / "example.com.zone").read_text()
    assert "example.com. 60 IN NS ns1.example.net." in zone
    assert "shop.example.com. 60 IN A 203.0.113.50" in zone


def test_build_writes_ir_nodes_and_manifest(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("build", str(spec), "-o", str(out)) == 0
    files = tree(out)
    # no dns/example.com.zone: the reference's nameserver lies in its zone (W301)
    assert set(files) == {"ir.json", "manifest.json"} | {
        f"nodes/{n}/node.json" for n in ("alpha", "beta", "gamma", "delta")
    } | {  # keys are unknown: no WireGuard files, but what needs none
        f"gateways/{g}/{f}" for g in ("gw-eu", "gw-us") for f in ("haproxy.cfg", "gateway.json")
    } | {f"nodes/{n}/nftables/prod.nft" for n in ("gamma", "delta")} | {
        f"nodes/{n}/dataplane/{f}"
        for n in ("alpha", "beta", "gamma", "delta")
        for f in ("hercules_config.h", "maps.json")
    } | {"nodes/alpha/netplan/60-enterprise.yaml", "nodes/beta/ipsec/swanctl.conf"} | {
        f"nodes/alpha/networkd/60-hercules-{f}"
        for f in (
            *("vx-dc1.netdev", "vx-dc1.network", "vl-office.netdev", "vl-office.network"),
            *("br-lan.netdev", "br-lan.network", "eth1.network", "eth2.network", "eth3.network"),
            *("br-hq.netdev", "br-hq.network"),
        )
    }
    validate_ir(json.loads(files["ir.json"]))
    manifest = json.loads(files["manifest.json"])["files"]
    assert set(manifest) == set(files) - {"manifest.json"}
    for path, entry in manifest.items():
        assert entry == {
            "sha256": hashlib.sha256(files[path]).hexdigest(),
            "size": len(files[path]),
        }
    delta = json.loads(files["nodes/delta/node.json"])
    assert delta["kind"] == "nat" and delta["networks"]["prod"]["subnet"] == "10.20.9.0/24"
    assert delta["networks"]["prod"]["address"] == "10.20.9.1"
    assert set(delta["networks"]["prod"]) >= {"subnet", "subnet6", "address", "address6"}


def test_two_builds_are_byte_identical(spec: Path, tmp_path: Path) -> None:
    assert run("build", str(spec), "-o", str(tmp_path / "a")) == 0
    assert run("build", str(spec), "-o", str(tmp_path / "b")) == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_statement_order_does_not_change_output(tmp_path: Path) -> None:
    text = (EXAMPLES / "reference.herc").read_text()
    blocks = text.split("\n\n")
    (tmp_path / "a.herc").write_text(text)
    (tmp_path / "b.herc").write_text("\n\n".join(reversed(blocks)) + "\n")
    assert run("build", str(tmp_path / "a.herc"), "-o", str(tmp_path / "oa")) == 0
    assert run("build", str(tmp_path / "b.herc"), "-o", str(tmp_path / "ob")) == 0
    assert tree(tmp_path / "oa") == tree(tmp_path / "ob")


def test_failing_build_leaves_output_exactly_as_it_was(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("build", str(spec), "-o", str(out)) == 0
    before = tree(out)
    lock_before = Path(str(spec) + ".lock").read_bytes()
    spec.write_text(spec.read_text().replace("port     8080", "port     80800"))
    assert run("build", str(spec), "-o", str(out)) == 1
    assert tree(out) == before
    assert Path(str(spec) + ".lock").read_bytes() == lock_before


def test_build_refuses_to_replace_a_foreign_directory(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("do not delete")
    assert run("build", str(spec), "-o", str(out)) == 2
    assert (out / "thesis.txt").read_text() == "do not delete"


def test_emit_ir_prints_the_ir(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", str(spec), "--emit-ir") == 0
    validate_ir(json.loads(capsys.readouterr().out))


def test_error_text_has_location_source_line_and_caret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.herc"
    bad.write_text("network prod {\n  range 10.20.0.0/16\n  rnage 1\n}\n")
    assert run("check", str(bad)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f'{bad}:3:3: error[E101]: unknown option "rnage" in network prod'
    assert err[1] == "3 |   rnage 1"
    assert err[2] == "  |   ^^^^^"
    assert err[3] == '  = hint: did you mean "range"?'


def test_error_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.herc"
    bad.write_text("network prod {\n  range 10.20.0.0/16\n  port 0\n}\n")
    assert run("check", str(bad), "--format", "json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    [e] = data["errors"]
    assert (e["code"], e["file"], e["line"], e["col"]) == ("E112", str(bad), 3, 8)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("check") == 2
    assert run("frobnicate", "x") == 2
    assert run("check", str(tmp_path / "missing.herc")) == 2


def test_internal_error_is_one_line_and_exits_70(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hercc.pipeline

    def boom(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(hercc.pipeline, "compile_spec", boom)
    assert run("check", str(spec)) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "ZeroDivisionError" in err
    assert "Traceback" not in err


def test_console_script_runs_as_a_process(spec: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hercc", "check", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_yaml_reference_builds_the_same_ir(tmp_path: Path) -> None:
    yaml_spec = EXAMPLES / "reference.herc.yaml"
    if not yaml_spec.exists():
        pytest.fail("examples/reference.herc.yaml is missing")
    shutil.copy(EXAMPLES / "reference.herc", tmp_path / "r.herc")
    shutil.copy(yaml_spec, tmp_path / "r.herc.yaml")
    assert run("build", str(tmp_path / "r.herc"), "-o", str(tmp_path / "a")) == 0
    assert run("build", str(tmp_path / "r.herc.yaml"), "-o", str(tmp_path / "b")) == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_fmt_of_reference_compiles_to_the_same_ir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hercc.ir import to_json
    from hercc.pipeline import compile_spec

    assert run("fmt", str(EXAMPLES / "reference.herc")) == 0
    formatted = tmp_path / "formatted.herc"
    formatted.write_text(capsys.readouterr().out)
    original = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir
    assert to_json(compile_spec(str(formatted), use_lock=False).ir) == to_json(original)
    assert run("fmt", "--check", str(formatted)) == 0


def test_fmt_check_and_write(tmp_path: Path) -> None:
    messy = tmp_path / "messy.herc"
    messy.write_text("network prod {range 10.20.0.0/16;port 51820}  # keep me\n")
    assert run("fmt", "--check", str(messy)) == 1
    assert run("fmt", "--write", str(messy)) == 0
    assert "# keep me" in messy.read_text()
    assert run("fmt", "--check", str(messy)) == 0
    assert run("fmt", "--check", "--write", str(messy)) == 2
