"""Golden trees: rendered files compared byte for byte with tests/golden/..., one rule for all.

HERCC_UPDATE_GOLDEN=1 rewrites the tree from what was rendered (the old tree
removed first, so a file no longer rendered goes too); the comparison runs
either way, so an update that did not take fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

UPDATE = os.environ.get("HERCC_UPDATE_GOLDEN") == "1"


def match_golden(files: Mapping[str, str], root: Path) -> None:
    """`files` (relative path -> text) are exactly the files under `root`, byte for byte."""
    if UPDATE:
        shutil.rmtree(root, ignore_errors=True)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(text.encode("utf-8"))
    on_disk = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(files), "the set of rendered files differs from the goldens"
    for rel, text in files.items():
        assert text.encode("utf-8") == on_disk[rel], f"{rel} differs from its golden"
