"""Writes a build directory atomically, with its manifest.

Files are written as they come (a build streams them node by node) into a
sibling temporary directory, hashed on the way for the manifest, and the
directory is swapped in by rename once the last one is written: a failing
build leaves the output directory exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from hercc.diagnostics import OperationError, UsageError
from hercc.ir import dumps

MANIFEST = "manifest.json"
# Files handed to the writing threads and not written yet: enough to keep them
# busy, few enough that memory does not grow with the output.
FILES_IN_FLIGHT = 16


def manifest(entries: Mapping[str, Mapping[str, int | str]]) -> str:
    """manifest.json of the files' entries (path -> sha256 and size)."""
    return dumps({"files": entries, "manifest_version": 1})


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
    files: Iterable[tuple[str, str]],
    secret_files: Mapping[str, str] | None = None,
) -> int:
    """Replace out_dir with exactly `files` and their manifest; return how many that is.

    `files` (path, text) are consumed lazily: at most FILES_IN_FLIGHT of them
    wait to be written when the next is asked for. Secrets are written mode
    0600 and stay out of the manifest.
    """
    out_dir = os.path.normpath(out_dir)
    _check_owned(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.hercc-new-")
    try:
        entries = _write_files(tmp, files)
        _write(tmp, MANIFEST, manifest(entries), 0o644)
        for rel, text in sorted((secret_files or {}).items()):
            _write(tmp, rel, text, 0o600)
            secrets_dir = os.path.join(tmp, rel.split("/secrets/")[0], "secrets")
            for root, dirs, _ in os.walk(secrets_dir):  # not even the file names are public
                os.chmod(root, 0o700)
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o700)
        os.chmod(tmp, 0o755)
        # Every file on disk before the directory is swapped in: one sync of the
        # filesystem, where an fsync per file took most of the time of a large build.
        os.sync()
        _swap_in(tmp, out_dir, parent)
        return len(entries) + 1
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OperationError(f"cannot write {out_dir}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_files(root: str, files: Iterable[tuple[str, str]]) -> dict[str, dict[str, int | str]]:
    """Write `files` under root; return their manifest entries (path -> sha256 and size).

    Two threads hash and write while this one renders the next files (the
    generator runs here): hashlib and file I/O let go of the GIL, and creating
    files and directories mostly waits on the filesystem, so two writers overlap.
    """

    def hash_and_write(rel: str, data: bytes) -> str:
        _write(root, rel, data, 0o644)
        return hashlib.sha256(data).hexdigest()

    entries: dict[str, dict[str, int | str]] = {}
    pending: deque[tuple[str, int, Future[str]]] = deque()

    def settle_oldest() -> None:
        rel, size, written = pending.popleft()
        entries[rel] = {"sha256": written.result(), "size": size}

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hercc-writer") as pool:
        for rel, text in files:
            data = text.encode("utf-8")  # once: the hash and the write share the bytes
            pending.append((rel, len(data), pool.submit(hash_and_write, rel, data)))
            if len(pending) >= FILES_IN_FLIGHT:
                settle_oldest()
        while pending:
            settle_oldest()
    return entries


def _write(root: str, rel: str, content: str | bytes, mode: int) -> None:
    """A new file in the temporary directory, which no one sees until it is swapped in."""
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "xb") as fh:  # never two files of one path
        os.fchmod(fh.fileno(), mode)  # before the data: a secret is never readable by others
        fh.write(content.encode("utf-8") if isinstance(content, str) else content)


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
