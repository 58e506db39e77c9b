"""Writes follow symbolic links, as editors and `sed -i --follow-symlinks` do (issue 8, defect 13).

The link stays a link; its final target gets the new content, replaced at
the target's place (so atomically there). Only creating a new file (keys)
never goes through a link.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hercc.sysio.files import write_atomic
from tests.clitools import hercc_err as hercc
from tests.conftest import EXAMPLES

UGLY = "network   x {\n range 10.9.0.0/16 }\n"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "demo.herc"
    shutil.copy(EXAMPLES / "quickstart.herc", path)
    return path


def test_build_into_a_link_replaces_the_directory_it_points_at(spec: Path, tmp_path: Path) -> None:
    real = tmp_path / "builds" / "v1"
    assert hercc("build", str(spec), "--node", "home", "-o", str(real))[0] == 0
    link = tmp_path / "out"
    link.symlink_to("builds/v1")
    code, err = hercc("build", str(spec), "-o", str(link))
    assert code == 0 and err.startswith(f"wrote 8 files to {link}")
    assert os.readlink(link) == "builds/v1"
    assert sorted(os.listdir(real / "nodes")) == ["edge1", "edge2", "home"]
    assert sorted(os.listdir(tmp_path)) == ["builds", "demo.herc", "demo.herc.lock", "out"]
    assert os.listdir(tmp_path / "builds") == ["v1"]  # no .v1.hercc-old-* left behind


def test_build_into_a_dangling_link_makes_its_target(spec: Path, tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "builds" / "v2")
    assert hercc("build", str(spec), "-o", str(link))[0] == 0
    assert link.is_symlink() and (tmp_path / "builds/v2/manifest.json").is_file()


def test_build_into_a_link_is_still_refused_when_the_target_is_not_a_build(
    spec: Path, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine\n")
    (tmp_path / "out").symlink_to("home")
    code, err = hercc("build", str(spec), "-o", str(tmp_path / "out"))
    assert code == 2 and f"refusing to replace {tmp_path}/out: " in err
    assert (tmp_path / "home" / "notes.txt").read_text() == "mine\n"


def test_fmt_write_formats_the_target_of_a_link(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    target = tmp_path / "specs" / "real.herc"
    target.write_text(UGLY)
    target.chmod(0o640)
    link = tmp_path / "link.herc"
    link.symlink_to("specs/real.herc")
    code, err = hercc("fmt", "--write", str(link))
    assert (code, err) == (0, f"formatted {link}\n")
    assert os.readlink(link) == "specs/real.herc"
    assert target.read_text() == "network x { range 10.9.0.0/16 }\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"  # the target keeps its mode
    assert os.listdir(tmp_path / "specs") == ["real.herc"]


def test_the_lock_of_a_linked_spec_is_written_through_its_link(spec: Path, tmp_path: Path) -> None:
    """SPEC.lock kept elsewhere (a shared checkout) and linked next to the spec."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "demo.herc.lock").symlink_to("shared/demo.lock")
    assert hercc("build", str(spec), "-o", str(tmp_path / "out"))[0] == 0
    assert (tmp_path / "demo.herc.lock").is_symlink()
    assert '"lock_version": 1' in (tmp_path / "shared" / "demo.lock").read_text()


def test_graph_writes_through_a_link(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "net.svg").write_text("old\n")
    (tmp_path / "g.svg").symlink_to("site/net.svg")
    assert hercc("graph", str(spec), "-o", str(tmp_path / "g.svg"))[0] == 0
    assert (tmp_path / "g.svg").is_symlink()
    assert (tmp_path / "site" / "net.svg").read_text().startswith("<?xml")


def test_write_atomic_follows_a_chain_of_links(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("c")
    write_atomic(tmp_path / "a", "x\n")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert (tmp_path / "c").read_text() == "x\n"


def test_creating_a_file_never_goes_through_a_link(tmp_path: Path) -> None:
    """exclusive=True (a new key file): a link there, even a dangling one, is a file that exists."""
    (tmp_path / "k").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "k", "secret\n", 0o600, exclusive=True)
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(os.listdir(tmp_path)) == ["k"]
