"""Writes a build directory atomically, with its manifest.

Files are written as they come (a build streams them node by node) into a
sibling temporary directory, hashed on the way for the manifest, and the
directory is swapped in by rename once the last one is written: a failing
build leaves the output directory exactly as it was. A big build comes in
parts (hercc.backends.node_parts): one forked worker process per CPU renders,
hashes and writes whole parts, while this one writes the rest.

nodes/ is marked as the top of its subtrees for ext4's directory allocator
(the `T` attribute of chattr(1)), which spreads each node's directory over the
disk as it does top-level ones. Without it, a large build made right after
another was deleted creates its 30,000 inodes among the ones just freed, which
ext4 without a journal skips one by one for a while: 13-17 s instead of 7-8 s
for 10,000 nodes here. Elsewhere the mark is ignored.

A build lands whole, its directory and its companion file (SPEC.lock) or
neither, in this order:
1. every file is written to the temporary directory, and synced;
2. the companion's new content is written and synced to a temporary file next
   to it (an unwritable directory fails here, before anything changed);
3. the output directory is moved aside and the new one renamed in its place;
4. the companion's temporary file is renamed over it. If that fails, step 3 is
   undone (two renames in one directory that just took two) and nothing changed;
5. the old directory is removed.
A crash between 3 and 4 leaves the new directory with the old lock: the next
build allocates from that lock as this one did, and writes the same lock.

Only a directory hercc wrote is replaced: one that holds a manifest.json of
hercc's (its `generator`, or the exact shape of older builds) and nothing it
does not list, but the secrets of `--keys`. A symbolic link to the directory
stays a link: the directory it points at is the one replaced.

Every mode is set explicitly, whatever the umask: directories 0755 and files
0644, netplan files 0600 (netplan warns about a file in /etc/netplan that
others can read), and secrets/ with everything in it 0700 and 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from itertools import chain

from hercc.diagnostics import UsageError
from hercc.ir import dumps
from hercc.sysio.cpus import usable_cpus
from hercc.sysio.files import Staged, make_dirs, mark_top_directory, stage, write_error
from hercc.sysio.forked import Forked

MANIFEST = "manifest.json"
GENERATOR, MANIFEST_VERSION = "hercc", 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Of the paths a refusal finds unlisted, those it names.
_NAMED_STRAYS = 5
# Files handed to the writing threads and not written yet: enough to keep them
# busy, few enough that memory does not grow with the output.
FILES_IN_FLIGHT = 16
DIR_MODE, FILE_MODE = 0o755, 0o644
PRIVATE_DIR_MODE, PRIVATE_FILE_MODE = 0o700, 0o600
# nodes/<node>/<kind>/ whose files only root may read; not even the names of secrets are public
_PRIVATE_FILES, _PRIVATE_DIRS = ("netplan", "secrets"), ("secrets",)
# Directories whose subdirectories are independent trees, for the filesystem to spread out.
_TOP_DIRS = ("nodes",)

Files = Iterable[tuple[str, str]]
Entry = dict[str, int | str]  # a file's manifest entry: sha256 and size


def manifest(entries: Mapping[str, Mapping[str, int | str]]) -> str:
    """manifest.json of the files' entries (path -> sha256 and size), marked as hercc's."""
    return dumps({"files": entries, "generator": GENERATOR, "manifest_version": MANIFEST_VERSION})


def write_tree(
    out_dir: str,
    files: Files,
    secret_files: Mapping[str, str] | None = None,
    companion: tuple[str, str] | None = None,
    parts: Sequence[Callable[[], Files]] = (),
) -> int:
    """Replace out_dir with exactly `parts`' files and `files`, and their manifest;
    return how many files that is.

    `files` (path, text) are consumed lazily: at most FILES_IN_FLIGHT of them
    wait to be written when the next is asked for. Each of `parts` gives more
    files when called: with two parts or more and two CPUs or more, worker
    processes write them while `files` are written here. Secrets are written
    mode 0600 and stay out of the manifest. `companion` (path, text), SPEC.lock
    for a build, lands with the directory or not at all (see the module's doc).
    A symbolic link out_dir stays: the directory it points at is replaced.

    UsageError if out_dir is not a build directory hercc may replace;
    OperationError (and nothing changed) if anything cannot be written.
    """
    try:
        target = os.path.realpath(out_dir)
        _check_owned(target, out_dir)
        parent = os.path.dirname(target)
        make_dirs(parent, DIR_MODE)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.hercc-new-")
    except OSError as exc:
        raise write_error(out_dir, exc) from None
    staged: Staged | None = None
    try:
        made: set[str] = set()
        entries = _write_all(tmp, parts, files, made)
        _write(tmp, MANIFEST, manifest(entries), made)
        for rel, text in sorted((secret_files or {}).items()):
            _write(tmp, rel, text, made)
        os.chmod(tmp, DIR_MODE)
        # Every file on disk before the directory is swapped in: one sync of the
        # filesystem, where an fsync per file took most of the time of a large build.
        os.sync()
        if companion is not None:
            staged = stage(*companion)
        _swap_in(tmp, target, staged)
        return len(entries) + 1
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if staged is not None:
            staged.discard()
        if isinstance(exc, OSError):
            raise write_error(out_dir, exc) from None
        raise


def _check_owned(out_dir: str, shown: str) -> None:
    """Never replace a directory hercc did not make (think `-o .`, or an app's manifest.json).

    An empty directory will do. Any other must hold a manifest.json that hercc
    wrote, and nothing that manifest does not list but the secrets of `--keys`
    (nodes/<node>/secrets/, never listed): replacing it deletes what it holds.
    """
    if not os.path.lexists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise UsageError(f"{shown} exists and is not a directory")
    if not os.listdir(out_dir):
        return
    refusal = f"refusing to replace {shown}"
    listed = _listed_files(os.path.join(out_dir, MANIFEST))
    if listed is None:
        if not os.path.lexists(os.path.join(out_dir, MANIFEST)):
            raise UsageError(
                f"{refusal}: it is not empty and holds no {MANIFEST} (not a hercc build directory)"
            )
        raise UsageError(
            f"{refusal}: its {MANIFEST} is not one that hercc wrote (not a hercc build directory)"
        )
    strays = _unlisted(out_dir, listed)
    if strays:
        named = ", ".join(strays[:_NAMED_STRAYS])
        if len(strays) > _NAMED_STRAYS:
            named += f" and {len(strays) - _NAMED_STRAYS} more"
        raise UsageError(
            f"{refusal}: it holds what its {MANIFEST} does not list: {named} "
            "(not written by hercc; move it out first)"
        )


def _listed_files(path: str) -> frozenset[str] | None:
    """The files of a manifest.json that hercc wrote; None for any other file.

    Known by its `generator`, or, from a hercc before that marker, by its exact
    shape: only `files` and `manifest_version`, and ir.json among the files.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO would hang; a link is not ours
            return None
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except FileNotFoundError:
        return None
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not _is_count(data.get("manifest_version"), MANIFEST_VERSION):
        return None
    marked = set(data) == {"files", "generator", "manifest_version"}
    if marked and data["generator"] != GENERATOR:
        return None
    if not marked and set(data) != {"files", "manifest_version"}:
        return None
    files = data["files"]
    if not isinstance(files, dict) or not all(_is_entry(e) for e in files.values()):
        return None
    if not marked and "ir.json" not in files:
        return None
    return frozenset(files)


def _is_entry(entry: object) -> bool:
    """{"sha256": 64 hex digits, "size": bytes}, as manifest() writes them."""
    return (
        isinstance(entry, dict)
        and set(entry) == {"sha256", "size"}
        and isinstance(entry["sha256"], str)
        and _SHA256.fullmatch(entry["sha256"]) is not None
        and _is_count(entry["size"])
    )


def _is_count(value: object, equal_to: int | None = None) -> bool:
    """A JSON integer (not a boolean), at least 0, and `equal_to` if given."""
    if type(value) is not int or value < 0:
        return False
    return equal_to is None or value == equal_to


def _unlisted(root: str, listed: frozenset[str]) -> list[str]:
    """What root holds that the manifest does not list, sorted; a directory once, ending in /."""
    owned = _owned_dirs(root, listed)
    strays = []
    pending = [""]  # directories to read, as prefixes of their entries' paths
    while pending:
        prefix = pending.pop()
        with os.scandir(os.path.join(root, prefix)) as entries:
            for entry in entries:  # scandir knows each entry's type: no stat per file
                rel = prefix + entry.name
                if not entry.is_dir(follow_symlinks=False):  # a link is a file here
                    if rel not in listed and rel != MANIFEST:
                        strays.append(rel)
                elif rel not in owned:
                    strays.append(rel + "/")
                elif not _is_secrets(rel):
                    pending.append(rel + "/")
    return sorted(strays)


def _owned_dirs(root: str, listed: frozenset[str]) -> set[str]:
    """The directories of the listed files, and nodes/<node>/secrets/ and
    gateways/<gateway>/secrets/ with their parents."""
    owned: set[str] = set()
    for path in listed:
        parts = path.split("/")
        owned.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    for kind in ("nodes", "gateways"):
        top = os.path.join(root, kind)
        if os.path.isdir(top) and not os.path.islink(top):
            for owner in os.listdir(top):
                if os.path.isdir(os.path.join(top, owner, "secrets")):
                    owned.update((kind, f"{kind}/{owner}", f"{kind}/{owner}/secrets"))
    return owned


def _is_secrets(rel_dir: str) -> bool:
    parts = rel_dir.split("/")
    return len(parts) == 3 and _kind(parts) == "secrets"


def _write_all(
    root: str, parts: Sequence[Callable[[], Files]], files: Files, made: set[str]
) -> dict[str, Entry]:
    """Write the parts' files and `files` under root; their manifest entries (path -> Entry)."""
    workers = usable_cpus()
    if len(parts) < 2 or workers < 2:
        return _write_files(root, chain(chain.from_iterable(p() for p in parts), files), made)
    with Forked([partial(_write_part, root, part) for part in parts], workers) as forked:
        entries = _write_files(root, files, made)
        for part_entries in forked.results():
            entries.update(part_entries)
    return entries


def _write_part(root: str, part: Callable[[], Files]) -> dict[str, Entry]:
    """In a worker process, with a CPU of its own: render, hash and write in turn."""
    made: set[str] = set()
    entries = {}
    for rel, text in part():
        data = text.encode("utf-8")
        entries[rel] = _hash_and_write(root, rel, data, made)
    return entries


def _hash_and_write(root: str, rel: str, data: bytes, made: set[str]) -> Entry:
    _write(root, rel, data, made)
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _write_files(root: str, files: Files, made: set[str]) -> dict[str, Entry]:
    """Write `files` under root; return their manifest entries (path -> Entry).

    Two threads hash and write while this one renders the next files (the
    generator runs here): hashlib and file I/O let go of the GIL, and creating
    files and directories mostly waits on the filesystem, so two writers overlap.
    """
    entries: dict[str, Entry] = {}
    pending: deque[tuple[str, Future[Entry]]] = deque()

    def settle_oldest() -> None:
        rel, written = pending.popleft()
        entries[rel] = written.result()

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hercc-writer") as pool:
        for rel, text in files:
            data = text.encode("utf-8")  # once: the hash and the write share the bytes
            pending.append((rel, pool.submit(_hash_and_write, root, rel, data, made)))
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
    """What nodes/<node>/<kind>/... or gateways/<gateway>/<kind>/... holds (secrets, ...)."""
    return dir_parts[2] if len(dir_parts) > 2 and dir_parts[0] in ("nodes", "gateways") else None


def _file_mode(rel: str) -> int:
    private = _kind(rel.split("/")[:-1]) in _PRIVATE_FILES
    return PRIVATE_FILE_MODE if private else FILE_MODE


def _make_dirs(root: str, rel_dir: str, made: set[str]) -> None:
    """root/rel_dir and its missing parents, each with its mode (mkdir's is cut by the umask).

    Writing threads and processes all call this: the one whose mkdir succeeds
    sets the mode, the others find the directory there and go on (all before
    the swap).
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
        if rel in _TOP_DIRS:
            mark_top_directory(path)
        made.add(rel)


def _swap_in(new: str, out_dir: str, companion: Staged | None) -> None:
    """Rename `new` to out_dir, then commit `companion`; undo the rename if that fails."""
    old = None
    if os.path.lexists(out_dir):
        parent, name = os.path.split(out_dir)
        old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.hercc-old-")
        os.rmdir(old)
        os.rename(out_dir, old)
    try:
        os.rename(new, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if companion is not None:
        try:
            companion.commit()
        except BaseException:
            os.rename(out_dir, new)  # where the caller removes it
            if old is not None:
                os.rename(old, out_dir)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
