"""The build writer: files streamed in, written one by one, landing whole or not at all."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.writer import FILES_IN_FLIGHT, write_tree


def _written_so_far(parent: Path) -> set[str]:
    """The files already in the build's temporary directory (.out.hercc-new-*)."""
    [tmp] = parent.glob(".out.hercc-new-*")
    return {str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()}


def test_files_are_written_as_they_come(tmp_path: Path) -> None:
    count = 5 * FILES_IN_FLIGHT
    written: list[set[str]] = []

    def files() -> Iterator[tuple[str, str]]:
        for i in range(count):
            yield f"nodes/n{i:03d}/node.json", f"{i}\n"
            # resumed when the writer wants the next file: all but the last few are on disk
            written.append(_written_so_far(tmp_path))

    assert write_tree(str(tmp_path / "out"), files()) == count + 1
    for produced, on_disk in enumerate(written, start=1):
        oldest = {f"nodes/n{j:03d}/node.json" for j in range(produced - FILES_IN_FLIGHT + 1)}
        assert oldest <= on_disk, produced
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["files"]["nodes/n002/node.json"] == {
        "sha256": hashlib.sha256(b"2\n").hexdigest(),
        "size": 2,
    }
    assert sorted(manifest["files"]) == [f"nodes/n{i:03d}/node.json" for i in range(count)]


def test_a_stream_that_fails_midway_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(str(out), [("ir.json", "old\n")])
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def files() -> Iterator[tuple[str, str]]:
        yield "ir.json", "new\n"
        yield "nodes/a/node.json", "{}\n"
        raise ValueError("a render failed")

    with pytest.raises(ValueError, match="a render failed"):
        write_tree(str(out), files())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind
