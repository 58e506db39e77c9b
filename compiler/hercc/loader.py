"""Reads a spec and everything it includes into one list of statements.

`include "path"` is resolved relative to the including file; a cycle is an
error naming the whole chain. `.herc.yaml`/`.yaml`/`.yml` files go through the
YAML front end, `.herc` files through the .herc parser.

Only spec files are read: named as one (SPEC_SUFFIXES), regular, at most
MAX_SPEC_BYTES, UTF-8. So a key file, a device or a FIFO is refused before
anything of it is parsed, let alone shown as the source line of an error.
Bytes that are not UTF-8 are a syntax error at the first of them.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from dataclasses import dataclass, field

from hercc import codes
from hercc.diagnostics import Collector, SpecError, UsageError
from hercc.source import Span
from hercc.syntax import SourceFile, Stmt

YAML_SUFFIXES = (".herc.yaml", ".yaml", ".yml")
SPEC_SUFFIXES = (".herc", *YAML_SUFFIXES)
MAX_SPEC_BYTES = 16 * 2**20  # a 10,000-node spec is about 1 MiB: this is only a bound


@dataclass
class LoadedSpec:
    """The statements of a spec in document order, with the files they came from."""

    root: str
    stmts: list[Stmt] = field(default_factory=list)
    files: dict[str, SourceFile] = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, str]:
        return {path: sf.text for path, sf in self.files.items()}


def is_yaml(path: str) -> bool:
    return path.endswith(YAML_SUFFIXES)


def parse_file(text: str, path: str) -> SourceFile:
    if is_yaml(path):
        from hercc.yaml_frontend import parse_yaml

        return parse_yaml(text, path)
    from hercc.parser import parse_text

    return parse_text(text, path)


_SPEC_NAMES = "hercc reads files named *.herc, *.herc.yaml, *.yaml or *.yml"  # SPEC_SUFFIXES


def read_text(path: str) -> str:
    """The text of a spec file, without a leading BOM.

    Raises OSError, its strerror saying why, unless `path` is a regular file
    named as a spec, of at most MAX_SPEC_BYTES of UTF-8 (NotUtf8 when not UTF-8).
    """
    _must_be_regular(os.stat(path).st_mode)  # before open(): a device may act on open
    if not path.endswith(SPEC_SUFFIXES):
        raise OSError(errno.EINVAL, f"not a spec file ({_SPEC_NAMES})")
    # O_NONBLOCK: should the path have become a FIFO since, open() does not wait for a writer.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as fh:
        _must_be_regular(os.fstat(fh.fileno()).st_mode)
        data = fh.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_SPEC_BYTES // 2**20} MiB")
    data = data.removeprefix(codecs.BOM_UTF8)  # some editors write one: it is no text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(data, exc.start) from None


class NotUtf8(OSError):
    """A file that is not UTF-8 text, and where its first byte that is not UTF-8 is."""

    def __init__(self, data: bytes, index: int) -> None:
        start = data.rfind(b"\n", 0, index) + 1
        before = data[start:index].decode("utf-8")  # valid: the decoder stopped at `index`
        self.line, self.col = data.count(b"\n", 0, index) + 1, len(before) + 1
        self.byte = data[index]
        super().__init__(errno.EILSEQ, f"not UTF-8 text (line {self.line}, column {self.col})")


_KINDS = {
    stat.S_IFDIR: (errno.EISDIR, "a directory"),
    stat.S_IFIFO: (errno.EINVAL, "a FIFO"),
    stat.S_IFCHR: (errno.EINVAL, "a character device"),
    stat.S_IFBLK: (errno.EINVAL, "a block device"),
    stat.S_IFSOCK: (errno.EINVAL, "a socket"),
}


def _must_be_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        code, kind = _KINDS.get(stat.S_IFMT(mode), (errno.EINVAL, "not a regular file"))
        raise OSError(code, f"{kind}, not a spec file")


def load(path: str, sources: dict[str, str] | None = None) -> LoadedSpec:
    """Load `path` and its includes. `sources` collects every text read, even on error,
    so that the CLI can show the offending line.

    Raises UsageError when `path` itself is no spec file (read_text), SpecError else."""
    spec = LoadedSpec(root=path)
    diags = Collector()
    texts = sources if sources is not None else {}
    _load_into(spec, path, (), None, diags, texts)
    diags.raise_if_any()
    return spec


def _load_into(
    spec: LoadedSpec,
    path: str,
    chain: tuple[str, ...],
    at: Span | None,
    diags: Collector,
    texts: dict[str, str],
) -> None:
    key = path = os.path.normpath(path)
    if key in chain:
        names = " -> ".join((*chain[chain.index(key) :], key))
        assert at is not None
        diags.error(codes.INCLUDE_CYCLE, f"include cycle: {names}", at)
        return
    if key in spec.files:
        return  # included twice through different paths: its statements count once
    try:
        text = read_text(path)
    except NotUtf8 as exc:  # a syntax error, at the byte; the line, not text, is never shown
        where = Span.point(path, exc.line, exc.col)
        diags.error(codes.SYNTAX, f"not UTF-8 text: byte 0x{exc.byte:02x}", where)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if at is None:  # the SPEC of the command line
            raise UsageError(f"cannot read {path}: {reason}") from None
        diags.error(codes.INCLUDE_MISSING, f"cannot read {path}: {reason}", at)
        return
    texts[path] = text
    try:
        sf = parse_file(text, path)
    except SpecError as err:
        diags.extend(err.diagnostics)
        return
    spec.files[key] = sf
    for stmt in sf.stmts:
        if stmt.keyword != "include":
            spec.stmts.append(stmt)
            continue
        target = _include_target(stmt, diags)
        if target is not None:
            child = os.path.join(os.path.dirname(path), target)
            _load_into(
                spec, os.path.normpath(child), (*chain, key), stmt.args[0].span, diags, texts
            )


def _include_target(stmt: Stmt, diags: Collector) -> str | None:
    if len(stmt.args) != 1 or stmt.args[0].kind not in ("string", "scalar") or stmt.block:
        diags.error(
            codes.ARGUMENTS, 'include takes one quoted path: include "file.herc"', stmt.span
        )
        return None
    return stmt.args[0].text
