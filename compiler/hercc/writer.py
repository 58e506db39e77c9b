"""Writes a build directory atomically, with its manifest.

Everything is rendered in memory first, written to a sibling temporary
directory, and swapped in by rename: a failing build leaves the output
directory exactly as it was.

Every mode is set explicitly, whatever the umask: directories 0755 and files
0644, netplan files 0600 (netplan warns about a file in /etc/netplan that
others can read), and secrets/ with everything in it 0700 and 0600.
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
DIR_MODE, FILE_MODE = 0o755, 0o644
PRIVATE_DIR_MODE, PRIVATE_FILE_MODE = 0o700, 0o600
# nodes/<node>/<kind>/ whose files only root may read; not even the names of secrets are public
_PRIVATE_FILES, _PRIVATE_DIRS = ("netplan", "secrets"), ("secrets",)


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
        made: set[str] = set()
        for rel, text in [*sorted(files.items()), *sorted((secret_files or {}).items())]:
            _make_dirs(tmp, os.path.dirname(rel), made)
            write_atomic(os.path.join(tmp, rel), text, _file_mode(rel), exclusive=True)
        os.chmod(tmp, DIR_MODE)
        _swap_in(tmp, out_dir, parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OperationError(f"cannot write {out_dir}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _kind(dir_parts: list[str]) -> str | None:
    """What nodes/<node>/<kind>/... or gateways/<gateway>/<kind>/... holds (secrets, ...)."""
    return dir_parts[2] if len(dir_parts) > 2 and dir_parts[0] in ("nodes", "gateways") else None


def _file_mode(rel: str) -> int:
    private = _kind(rel.split("/")[:-1]) in _PRIVATE_FILES
    return PRIVATE_FILE_MODE if private else FILE_MODE


def _make_dirs(root: str, rel_dir: str, made: set[str]) -> None:
    """root/rel_dir and its missing parents, each with its mode (mkdir's is cut by the umask)."""
    parts = rel_dir.split("/") if rel_dir else []
    for depth in range(1, len(parts) + 1):
        rel = "/".join(parts[:depth])
        if rel in made:
            continue
        path = os.path.join(root, rel)
        os.mkdir(path)
        private = _kind(parts[:depth]) in _PRIVATE_DIRS
        os.chmod(path, PRIVATE_DIR_MODE if private else DIR_MODE)
        made.add(rel)


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
