"""The modes of a build directory are hercc's, whatever the umask of the user running it.

Directories 0755, files 0644; netplan files 0600 (netplan warns about a file
of /etc/netplan that others can read); secrets/ and everything under it
0700 and 0600.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from hercc.cli import main as cli
from tests.conftest import EXAMPLES


def expected_mode(rel: Path, is_dir: bool) -> int:
    """By what nodes/<node>/<kind>/ holds."""
    in_dir = rel.parts if is_dir else rel.parts[:-1]
    kind = in_dir[2] if len(in_dir) > 2 else None
    if kind == "secrets":
        return 0o700 if is_dir else 0o600
    if is_dir:
        return 0o755
    return 0o600 if kind == "netplan" else 0o644


def wrong_modes(out: Path) -> dict[str, str]:
    found = {p.relative_to(out): p for p in [out, *out.rglob("*")]}
    return {
        str(rel): oct(stat.S_IMODE(p.lstat().st_mode))
        for rel, p in found.items()
        if stat.S_IMODE(p.lstat().st_mode) != expected_mode(rel, p.is_dir())
    }


@pytest.fixture(scope="module")
def spec_and_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("spec")
    spec = root / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", spec)
    assert cli.main(["keys", "init", "--keys", str(root / "keys"), str(spec)]) == 0
    return spec, root / "keys"


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], ids=["000", "022", "077"])
def test_build_modes_do_not_depend_on_the_umask(
    tmp_path: Path, spec_and_keys: tuple[Path, Path], umask: int
) -> None:
    spec, keys = spec_and_keys
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        assert cli.main(["build", str(spec), "--keys", str(keys), "-o", str(out)]) == 0
    finally:
        os.umask(old)
    assert (out / "nodes/alpha/netplan/prod.yaml").is_file()
    assert (out / "nodes/alpha/secrets/alpha.key").is_file()
    assert not wrong_modes(out)


def test_nodes_named_like_an_output_kind_get_ordinary_modes(tmp_path: Path) -> None:
    """A node named `secrets` or `netplan` is a node, not a private directory."""
    spec = tmp_path / "names.herc"
    spec.write_text(
        "network n { range 10.1.0.0/16 }\n\n"
        "node secrets {\n  network  n\n  endpoint 192.0.2.1\n}\n\n"
        "node netplan {\n  network  n\n  endpoint 192.0.2.2\n}\n",
        encoding="utf-8",
    )
    keys = tmp_path / "keys"
    assert cli.main(["keys", "init", "--keys", str(keys), str(spec)]) == 0
    out = tmp_path / "out"
    assert cli.main(["build", str(spec), "--keys", str(keys), "-o", str(out)]) == 0
    assert (out / "nodes/secrets/netplan/n.yaml").is_file()
    assert (out / "nodes/netplan/secrets/netplan.key").is_file()
    assert not wrong_modes(out)


def test_nested_secrets_directories_are_private_under_umask_000(tmp_path: Path) -> None:
    from hercc.writer import write_tree

    out = tmp_path / "out"
    old = os.umask(0)
    try:
        write_tree(
            str(out),
            [("nodes/a/wireguard/n.conf", "x\n")],
            {"nodes/a/secrets/a.key": "k\n", "nodes/a/secrets/psk/n/b.psk": "p\n"},
        )
    finally:
        os.umask(old)
    assert (out / "nodes/a/secrets/psk/n/b.psk").is_file()
    assert not wrong_modes(out)


def test_keys_directories_are_private_under_umask_000(tmp_path: Path) -> None:
    """`keys init` into a path whose parents are missing, and PSKs made later, under umask 000."""
    spec = tmp_path / "psk.herc"
    spec.write_text(
        "network n {\n  range 10.1.0.0/16\n  psk   on\n}\n\n"
        "node a {\n  network  n\n  endpoint 192.0.2.1\n}\n\n"
        "node b {\n  network  n\n  endpoint 192.0.2.2\n}\n",
        encoding="utf-8",
    )
    keys = tmp_path / "deep" / "er" / "keys"
    old = os.umask(0)
    try:
        assert cli.main(["keys", "init", "--keys", str(keys), str(spec)]) == 0
        from hercc.keys import psk_for

        psk_for(str(keys), "n", "a", "b")
    finally:
        os.umask(old)
    made = [tmp_path / "deep", tmp_path / "deep" / "er", keys]
    made += [p for p in keys.rglob("*") if p.is_dir()]
    assert len(made) >= 5  # deep, er, keys, psk, psk/n
    assert {p: oct(p.stat().st_mode & 0o777) for p in made} == {p: "0o700" for p in made}
