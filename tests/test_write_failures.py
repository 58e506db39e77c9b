"""A write that fails is one clear line and exit 1, and a build lands whole or not at all
(issue 8, defect 12).

Read-only directories are tested in a child process without CAP_DAC_OVERRIDE
(`setpriv --bounding-set`): the tests run as root, which the modes do not stop.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.diagnostics import OperationError
from hercc.writer import write_tree
from tests.clitools import hercc_err as hercc
from tests.clitools import tree
from tests.conftest import EXAMPLES

# The capabilities that let root write where the modes say no.
_OVERRIDES = "-dac_override,-dac_read_search,-fowner,-linux_immutable"


def hercc_bound_by_modes(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m hercc ARGV` as a process that the file modes bind, root or not."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root's CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set", _OVERRIDES, "--"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "hercc", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_error_line(err: str) -> str:
    """The message of a single `hercc: error:` line (no internal error, no traceback)."""
    assert err.count("\n") == 1 and err.startswith("hercc: error: "), err
    return err.removeprefix("hercc: error: ").rstrip("\n")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "demo.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", path)
    return path


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A directory that is read-only to its owner too."""
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    yield path
    path.chmod(0o755)  # so that pytest can remove it


# ---------------------------------------------------------------- every command that writes


def test_build_under_a_read_only_parent_is_an_error(spec: Path, read_only: Path) -> None:
    run = hercc_bound_by_modes("build", "demo.herc", "-o", "ro/out", cwd=spec.parent)
    assert run.returncode == 1
    assert one_error_line(run.stderr) == "cannot write ro/out: Permission denied"
    assert os.listdir(read_only) == []
    assert not (spec.parent / "demo.herc.lock").exists()  # the build did not land: nor did the lock


def test_build_under_a_file_is_an_error(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x\n")
    code, err = hercc("build", str(spec), "-o", str(tmp_path / "afile" / "out"))
    assert code == 1
    assert (
        one_error_line(err) == f"cannot create {tmp_path}/afile: it exists and is not a directory"
    )
    assert not (tmp_path / "demo.herc.lock").exists()


def test_build_errors_are_json_with_format_json(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x\n")
    out = io.StringIO()
    code = cli.main(["build", "--format", "json", str(spec), "-o", str(tmp_path / "afile/o")], out)
    assert code == 1
    assert json.loads(out.getvalue()) == {
        "ok": False,
        "error": f"cannot create {tmp_path}/afile: it exists and is not a directory",
        "kind": "operation",
    }


def test_graph_into_a_read_only_directory_is_an_error(spec: Path, read_only: Path) -> None:
    run = hercc_bound_by_modes("graph", "demo.herc", "-o", "ro/g.svg", cwd=spec.parent)
    assert run.returncode == 1
    assert one_error_line(run.stderr) == "cannot write ro/g.svg: Permission denied"
    assert os.listdir(read_only) == []


def test_graph_into_a_missing_directory_is_an_error(spec: Path) -> None:
    code, err = hercc("graph", str(spec), "-o", str(spec.parent / "nope" / "g.dot"))
    assert code == 1
    assert (
        one_error_line(err) == f"cannot write {spec.parent}/nope/g.dot: No such file or directory"
    )


def test_fmt_write_in_a_read_only_directory_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "s.herc").write_text("network   x {\n range 10.9.0.0/16 }\n")
    folder.chmod(0o555)
    try:
        run = hercc_bound_by_modes("fmt", "--write", "specs/s.herc", cwd=tmp_path)
    finally:
        folder.chmod(0o755)
    assert run.returncode == 1
    assert one_error_line(run.stderr) == "cannot write specs/s.herc: Permission denied"
    assert (folder / "s.herc").read_text() == "network   x {\n range 10.9.0.0/16 }\n"
    assert os.listdir(folder) == ["s.herc"]


def test_keys_init_into_a_read_only_directory_is_an_error(spec: Path, read_only: Path) -> None:
    run = hercc_bound_by_modes("keys", "init", "--keys", "ro/keys", "demo.herc", cwd=spec.parent)
    assert run.returncode == 1
    assert one_error_line(run.stderr) == "cannot create ro/keys: Permission denied"


def test_plan_out_into_a_read_only_directory_is_an_error(spec: Path, read_only: Path) -> None:
    keys, state = spec.parent / "keys", spec.parent / "state"
    assert hercc("keys", "init", "--keys", str(keys), str(spec))[0] == 0
    argv = ["plan", "--node", "edge1", "--keys", "keys", "--state-dir", str(state)]
    argv += ["--netns-prefix", f"w8{os.getpid() % 10000}", "-o", "ro/p.json", "demo.herc"]
    run = hercc_bound_by_modes(*argv, cwd=spec.parent)
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == "hercc: error: cannot write ro/p.json: Permission denied"
    assert os.listdir(read_only) == []


def test_a_lab_whose_directory_cannot_be_made_is_an_error(spec: Path, tmp_path: Path) -> None:
    """`lab up` fails on its state directory before it creates anything on the machine."""
    (tmp_path / "afile").write_text("x\n")
    env = {**os.environ, "HERCULES_LAB_DIR": str(tmp_path / "afile" / "labs")}
    run = subprocess.run(
        [sys.executable, "-m", "hercc", "lab", "up", "--name", "w8ro", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert run.returncode == 1
    assert one_error_line(run.stderr) == (
        f"cannot create {tmp_path}/afile/labs/w8ro: {tmp_path}/afile is not a directory"
    )


@pytest.mark.parametrize("action", ["up", "down"])
def test_a_lab_whose_lock_cannot_be_made_is_an_error(
    spec: Path, read_only: Path, action: str
) -> None:
    read_only.chmod(0o755)
    (read_only / "w8ro").mkdir()
    read_only.chmod(0o555)
    (read_only / "w8ro").chmod(0o555)
    argv = ["env", f"HERCULES_LAB_DIR={read_only}", sys.executable, "-m", "hercc"]
    argv += ["lab", action, "--name", "w8ro"] + (["demo.herc"] if action == "up" else [])
    prefix = ["setpriv", "--bounding-set", _OVERRIDES, "--"] if os.geteuid() == 0 else []
    run = subprocess.run(
        [*prefix, *argv], cwd=spec.parent, capture_output=True, text=True, timeout=60, check=False
    )
    (read_only / "w8ro").chmod(0o755)
    assert run.returncode == 1
    assert one_error_line(run.stderr) == f"{read_only}/w8ro/lock: cannot lock: Permission denied"
    assert os.listdir(read_only / "w8ro") == []


# ---------------------------------------------------------------- the build and its lock


def test_an_unwritable_lock_directory_leaves_the_build_as_it_was(
    tmp_path: Path, read_only: Path
) -> None:
    """The spec lives where the lock cannot be written: neither the lock nor DIR changes."""
    read_only.chmod(0o755)
    shutil.copy(EXAMPLES / "quickstart.herc", read_only / "demo.herc")
    assert hercc("build", str(read_only / "demo.herc"), "-o", str(tmp_path / "out"))[0] == 0
    before = tree(tmp_path / "out")
    lock_before = (read_only / "demo.herc.lock").read_text()
    with (read_only / "demo.herc").open("a") as fh:  # a new node: the lock must change
        fh.write("\nnode edge3 {\n  network  demo\n  endpoint 192.0.2.13\n}\n")
    read_only.chmod(0o555)
    run = hercc_bound_by_modes("build", "ro/demo.herc", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert one_error_line(run.stderr) == "cannot write ro/demo.herc.lock: Permission denied"
    assert tree(tmp_path / "out") == before
    assert (read_only / "demo.herc.lock").read_text() == lock_before
    assert sorted(os.listdir(tmp_path)) == ["out", "ro"]  # no temporary left
    assert sorted(os.listdir(read_only)) == ["demo.herc", "demo.herc.lock"]


def test_a_new_build_directory_does_not_appear_when_the_lock_cannot_be_written(
    tmp_path: Path, read_only: Path
) -> None:
    read_only.chmod(0o755)
    shutil.copy(EXAMPLES / "quickstart.herc", read_only / "demo.herc")
    read_only.chmod(0o555)
    run = hercc_bound_by_modes("build", "ro/demo.herc", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert sorted(os.listdir(tmp_path)) == ["ro"]


def test_a_companion_that_cannot_land_undoes_the_swap(tmp_path: Path) -> None:
    """The lock is put in place after the directory: if that fails, the directory goes back."""
    out = tmp_path / "out"
    write_tree(str(out), [("ir.json", "old\n")])
    before = tree(out)
    in_the_way = tmp_path / "spec.lock"
    (in_the_way / "sub").mkdir(parents=True)  # a directory where the lock goes: rename fails
    with pytest.raises(OperationError, match=r"cannot write .*spec\.lock: "):
        write_tree(str(out), [("ir.json", "new\n")], companion=(str(in_the_way), "lock\n"))
    assert tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "spec.lock"]
    assert os.listdir(in_the_way) == ["sub"]


def test_a_full_disk_midway_leaves_the_build_and_its_companion_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hercc import writer

    out = tmp_path / "out"
    write_tree(str(out), [("ir.json", "old\n")])
    before = tree(out)
    real_write = writer._write

    def full_disk(root: str, rel: str, content: str | bytes, made: set[str]) -> None:
        if rel.startswith("nodes/b/"):
            raise OSError(28, "No space left on device")
        real_write(root, rel, content, made)

    monkeypatch.setattr(writer, "_write", full_disk)
    files = [("ir.json", "new\n"), ("nodes/a/node.json", "{}\n"), ("nodes/b/node.json", "{}\n")]
    with pytest.raises(OperationError, match=f"^cannot write {out}: No space left on device$"):
        write_tree(str(out), files, companion=(str(tmp_path / "spec.lock"), "lock\n"))
    assert tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_the_lock_lands_with_the_build(spec: Path, tmp_path: Path) -> None:
    code, err = hercc("build", str(spec), "-o", str(tmp_path / "out"))
    assert code == 0 and err == f"wrote 8 files to {tmp_path}/out; updated {spec}.lock\n"
    assert json.loads((tmp_path / "demo.herc.lock").read_text())["lock_version"] == 1
    assert sorted(os.listdir(tmp_path)) == ["demo.herc", "demo.herc.lock", "out"]


def test_an_ir_json_that_fails_its_schema_leaves_no_output_and_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema check runs while the nodes' files are written: its failure lands nothing."""
    from hercc import schemas_check

    def reject(data: object) -> None:
        raise schemas_check.SchemaViolation("ir.json fails schemas/ir.schema.json at /nodes")

    spec = tmp_path / "ref.herc"
    shutil.copy(EXAMPLES / "reference.herc", spec)
    monkeypatch.setattr(schemas_check, "validate_ir", reject)
    code, err = hercc("build", str(spec), "-o", str(tmp_path / "out"))
    assert code == 70 and "ir.json fails schemas/ir.schema.json" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.herc"]
    monkeypatch.undo()
    assert hercc("build", str(spec), "-o", str(tmp_path / "out"))[0] == 0
    assert json.loads((tmp_path / "out" / "ir.json").read_text())["nodes"]
