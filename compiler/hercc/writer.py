"""Writes a build directory atomically, with its manifest.

Files are written as they come (a build streams them node by node) into a
sibling temporary directory, hashed on the way for the manifest, and the
directory is swapped in by rename once the last one is written: a failing
build leaves the output directory exactly as it was.

Every mode is set explicitly, whatever the umask: directories 0755 and files
0644, netplan files 0600 (netplan warns about a file in /etc/netplan that
others can read), and secrets/ with everything in it 0700 and 0600.
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
# Files handed to the writing thread and not written yet: enough to keep both
# threads busy, few enough that memory does not grow with the output.
FILES_IN_FLIGHT = 16
DIR_MODE, FILE_MODE = 0o755, 0o644
PRIVATE_DIR_MODE, PRIVATE_FILE_MODE = 0o700, 0o600
# nodes/<node>/<kind>/ whose files only root may read; not even the names of secrets are public
_PRIVATE_FILES, _PRIVATE_DIRS = ("netplan", "secrets"), ("secrets",)


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
        made: set[str] = set()
        entries = _write_files(tmp, files, made)
        _write(tmp, MANIFEST, manifest(entries), made)
        for rel, text in sorted((secret_files or {}).items()):
            _write(tmp, rel, text, made)
        os.chmod(tmp, DIR_MODE)
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


def _write_files(
    root: str, files: Iterable[tuple[str, str]], made: set[str]
) -> dict[str, dict[str, int | str]]:
    """Write `files` under root; return their manifest entries (path -> sha256 and size).

    Two threads hash and write while this one renders the next files (the
    generator runs here): hashlib and file I/O let go of the GIL, and creating
    files and directories mostly waits on the filesystem, so two writers overlap.
    """

    def hash_and_write(rel: str, data: bytes) -> str:
        _write(root, rel, data, made)
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


def _write(root: str, rel: str, content: str | bytes, made: set[str]) -> None:
    """A new file in the temporary directory, which no one sees until it is swapped in."""
    _make_dirs(root, os.path.dirname(rel), made)
    with open(os.path.join(root, rel), "xb") as fh:  # never two files of one path
        os.fchmod(fh.fileno(), _file_mode(rel))  # before the data: a secret is never readable
        fh.write(content.encode("utf-8") if isinstance(content, str) else content)


def _kind(dir_parts: list[str]) -> str | None:
    """What nodes/<node>/<kind>/... holds (wireguard, netplan, secrets, ...)."""
    return dir_parts[2] if len(dir_parts) > 2 and dir_parts[0] == "nodes" else None


def _file_mode(rel: str) -> int:
    private = _kind(rel.split("/")[:-1]) in _PRIVATE_FILES
    return PRIVATE_FILE_MODE if private else FILE_MODE


def _make_dirs(root: str, rel_dir: str, made: set[str]) -> None:
    """root/rel_dir and its missing parents, each with its mode (mkdir's is cut by the umask).

    Both writing threads call this: the one whose mkdir succeeds sets the mode,
    the other finds the directory there and goes on (all before the swap).
    """
    parts = rel_dir.split("/") if rel_dir else []
    for depth in range(1, len(parts) + 1):
        rel = "/".join(parts[:depth])
        if rel in made:
            continue
        path = os.path.join(root, rel)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
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
