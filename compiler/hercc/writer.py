"""Writes a build directory atomically, with its manifest.

Everything is rendered in memory first, written to a sibling temporary
directory, and swapped in by rename: a failing build leaves the output
directory exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping

from hercc.diagnostics import OperationError, UsageError
from hercc.ir import dumps
from hercc.sysio.files import write_atomic

MANIFEST = "manifest.json"


def manifest(files: Mapping[str, bytes]) -> str:
    entries = {}
    for path in sorted(files):
        data = files[path]
        entries[path] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return dumps({"files": entries, "manifest_version": 1})


def with_manifest(files: Mapping[str, str]) -> dict[str, bytes]:
    """Every file encoded once (the hash and the write share the bytes), plus the manifest."""
    encoded = {path: text.encode("utf-8") for path, text in files.items()}
    encoded[MANIFEST] = manifest(encoded).encode("utf-8")
    return encoded


def _check_owned(out_dir: str) -> None:
    """Never replace a directory hercc did not make (think `-o .`)."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise UsageError(f"{out_dir} exists and is not a directory")
    if os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, MANIFEST)):
        raise UsageError(
            f"refusing to replace {out_dir}: it is not empty and holds no {MANIFEST} "
            "(not a hercc build directory)"
        )


def write_tree(
    out_dir: str,
    files: Mapping[str, str | bytes],
    secret_files: Mapping[str, str] | None = None,
) -> None:
    """Replace out_dir with exactly `files` (plus secrets, mode 0600, not in the manifest)."""
    out_dir = os.path.normpath(out_dir)
    _check_owned(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.hercc-new-")
    try:
        for rel, text in sorted(files.items()):
            _write(tmp, rel, text, 0o644)
        for rel, text in sorted((secret_files or {}).items()):
            _write(tmp, rel, text, 0o600)
            secrets_dir = os.path.join(tmp, rel.split("/secrets/")[0], "secrets")
            for root, dirs, _ in os.walk(secrets_dir):  # not even the file names are public
                os.chmod(root, 0o700)
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o700)
        os.chmod(tmp, 0o755)
        _swap_in(tmp, out_dir, parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OperationError(f"cannot write {out_dir}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write(root: str, rel: str, content: str | bytes, mode: int) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, content, mode, exclusive=True)


def _swap_in(new: str, out_dir: str, parent: str) -> None:
    if not os.path.exists(out_dir):
        os.rename(new, out_dir)
        return
    old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.hercc-old-")
    os.rmdir(old)
    os.rename(out_dir, old)
    try:
        os.rename(new, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
