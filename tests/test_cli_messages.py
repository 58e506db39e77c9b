"""The CLI's messages for mistakes that are not in a spec: each says what is wrong, with exit 1 or 2.

Run through `hercc` as a user would; none of them is an internal error (70).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.cli.exitcode import ExitCode
from tests.conftest import EXAMPLES


def hercc(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("build")
    spec = root / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", spec)
    assert hercc("build", str(spec), "-o", str(root / "out"))[0] == ExitCode.OK
    return root / "out"


# ---------------------------------------------------------------- summary


def test_summary_of_a_build(build: Path) -> None:
    code, out, _ = hercc("summary", str(build))
    assert code == ExitCode.OK and out.startswith("Networks (1)")


def _broken(build: Path, tmp_path: Path, ir_json: object) -> str:
    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    (copy / "ir.json").write_text(json.dumps(ir_json), encoding="utf-8")
    return str(copy)


MALFORMED = {
    "empty object": {},
    "a list": [],
    "no networks": {"ir_version": 1},
    "networks not a list": {"ir_version": 1, "networks": {"prod": 1}},
    "a node without its fields": {"ir_version": 1, "networks": [], "nodes": [{}]},
}


@pytest.mark.parametrize("ir_json", MALFORMED.values(), ids=list(MALFORMED))
def test_summary_of_a_malformed_ir_is_a_clear_error(
    build: Path, tmp_path: Path, ir_json: object
) -> None:
    out_dir = _broken(build, tmp_path, ir_json)
    code, out, err = hercc("summary", out_dir)
    assert (code, out) == (ExitCode.ERROR, "")
    assert err.startswith(f"hercc: error: {out_dir}: not a hercc build directory (ir.json: ")
    assert err.count("\n") == 1


def test_summary_of_an_ir_of_another_version_says_which(build: Path, tmp_path: Path) -> None:
    data = json.loads((build / "ir.json").read_text(encoding="utf-8"))
    out_dir = _broken(build, tmp_path, {**data, "ir_version": 0})
    code, _, err = hercc("summary", out_dir)
    assert code == ExitCode.ERROR
    assert err == (
        f"hercc: error: {out_dir}/ir.json: ir_version 0, this hercc reads 1 "
        "(rebuild it with this hercc)\n"
    )


def test_summary_of_a_malformed_manifest_is_a_clear_error(build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    (copy / "manifest.json").write_text('{"files": 3}', encoding="utf-8")
    code, _, err = hercc("summary", str(copy))
    assert code == ExitCode.ERROR
    assert err.startswith(f"hercc: error: {copy}: not a hercc build directory (manifest.json: ")
