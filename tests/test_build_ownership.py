"""`build -o DIR` replaces DIR only when it is a hercc build directory (issue 8, defect 1).

A hercc build directory holds a manifest.json that hercc wrote (`generator:
"hercc"`, or the exact shape of the builds before that marker) and no file
that manifest does not list, except the secrets of `--keys`. Anything else
is refused with exit 2 and left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.clitools import hercc_err as hercc
from tests.clitools import tree
from tests.conftest import EXAMPLES


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "demo.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", path)
    return path


def test_a_directory_with_someone_elses_manifest_is_left_alone(spec: Path, tmp_path: Path) -> None:
    """The issue's repro: an app's manifest.json next to its sources."""
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "manifest.json").write_text('{"name":"app"}\n')
    (project / "src" / "app.js").write_text("x\n")
    before = tree(project)
    code, err = hercc("build", str(spec), "-o", str(project))
    assert code == 2
    assert err == (
        f"hercc: error: refusing to replace {project}: its manifest.json is not one that hercc "
        "wrote (not a hercc build directory)\n"
    )
    assert tree(project) == before
    assert sorted(os.listdir(tmp_path)) == ["demo.herc", "p"]  # no lock, no temporary


def _old_manifest(files: dict[str, object]) -> str:
    return json.dumps({"files": files, "manifest_version": 1})


ENTRY = {"sha256": "0" * 64, "size": 3}
FOREIGN = {
    "not JSON": "name = app\n",
    "a list": '["ir.json"]\n',
    "another version": json.dumps({"files": {"ir.json": ENTRY}, "manifest_version": 2}),
    "no ir.json listed": _old_manifest({"a.txt": ENTRY}),
    "an entry without a hash": _old_manifest({"ir.json": {"size": 3}}),
    "a hash that is no sha256": _old_manifest({"ir.json": {"sha256": "x", "size": 3}}),
    "a size that is no number": _old_manifest({"ir.json": {"sha256": "0" * 64, "size": "3"}}),
    "another key": json.dumps({"files": {"ir.json": ENTRY}, "manifest_version": 1, "name": "x"}),
    "another generator": json.dumps(
        {"files": {"ir.json": ENTRY}, "generator": "other", "manifest_version": 1}
    ),
}


@pytest.mark.parametrize("text", FOREIGN.values(), ids=FOREIGN.keys())
def test_only_a_hercc_manifest_makes_a_build_directory(
    spec: Path, tmp_path: Path, text: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(text)
    (out / "ir.json").write_text("{}\n")
    code, err = hercc("build", str(spec), "-o", str(out))
    assert (code, err.count("\n")) == (2, 1)
    assert "not one that hercc wrote (not a hercc build directory)" in err
    assert (out / "manifest.json").read_text() == text


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_a_manifest_json_that_is_no_file_is_refused_without_reading_it(
    spec: Path, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if kind == "directory":
        (out / "manifest.json").mkdir()
    elif kind == "fifo":
        os.mkfifo(out / "manifest.json")  # reading it would hang
    else:
        real = tmp_path / "real.json"
        real.write_text(_old_manifest({"ir.json": ENTRY}))
        (out / "manifest.json").symlink_to(real)
    code, err = hercc("build", str(spec), "-o", str(out))
    assert code == 2 and "not a hercc build directory" in err
    assert os.path.lexists(out / "manifest.json")


def test_a_build_directory_is_replaced_and_says_hercc_wrote_it(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert hercc("build", str(spec), "-o", str(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"] == "hercc" and manifest["manifest_version"] == 1
    assert hercc("build", str(spec), "--node", "home", "-o", str(out))[0] == 0
    assert sorted(os.listdir(out / "nodes")) == ["home"]


def test_a_build_of_an_older_hercc_is_still_replaced(spec: Path, tmp_path: Path) -> None:
    """Its manifest has no generator: known by its exact shape, with ir.json listed."""
    out = tmp_path / "out"
    assert hercc("build", str(spec), "-o", str(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["generator"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    assert hercc("build", str(spec), "--node", "home", "-o", str(out))[0] == 0
    assert sorted(os.listdir(out / "nodes")) == ["home"]


@pytest.mark.parametrize(
    ("added", "named"),
    [
        ("notes.txt", "notes.txt"),
        ("nodes/home/extra.conf", "nodes/home/extra.conf"),
        ("nodes/home/custom/a.conf", "nodes/home/custom/"),
        ("nodes/omega/", "nodes/omega/"),
    ],
)
def test_a_build_directory_with_files_it_does_not_list_is_left_alone(
    spec: Path, tmp_path: Path, added: str, named: str
) -> None:
    """Someone put their own files in a build directory: replacing it would delete them."""
    out = tmp_path / "out"
    assert hercc("build", str(spec), "-o", str(out))[0] == 0
    path = out / added
    path.parent.mkdir(parents=True, exist_ok=True)
    if added.endswith("/"):
        path.mkdir()
    else:
        path.write_text("mine\n")
    before = tree(out)
    code, err = hercc("build", str(spec), "-o", str(out))
    assert code == 2
    assert err == (
        f"hercc: error: refusing to replace {out}: it holds what its manifest.json does not "
        f"list: {named} (not written by hercc; move it out first)\n"
    )
    assert tree(out) == before and path.exists()


def test_many_unlisted_files_are_named_a_few(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert hercc("build", str(spec), "-o", str(out))[0] == 0
    for i in range(8):
        (out / f"mine{i}.txt").write_text("mine\n")
    code, err = hercc("build", str(spec), "-o", str(out))
    assert code == 2
    assert "list: mine0.txt, mine1.txt, mine2.txt, mine3.txt, mine4.txt and 3 more (" in err


def test_the_secrets_of_a_build_are_its_own(spec: Path, tmp_path: Path) -> None:
    """`--keys` writes secrets the manifest does not list; the next build replaces them."""
    keys = tmp_path / "keys"
    assert hercc("keys", "init", "--keys", str(keys), str(spec))[0] == 0
    out = tmp_path / "out"
    assert hercc("build", str(spec), "--keys", str(keys), "-o", str(out))[0] == 0
    assert (out / "nodes/home/secrets/home.key").is_file()
    assert (out / "gateways/gw1/secrets/gw1.key").is_file()  # a gateway's are its own too
    assert hercc("build", str(spec), "--keys", str(keys), "-o", str(out))[0] == 0
    assert hercc("build", str(spec), "-o", str(out))[0] == 0
    assert not (out / "nodes/home/secrets").exists()
    assert not (out / "gateways/gw1/secrets").exists()
