"""WireGuard keys of the nodes of a spec: generation, rotation, storage.

Layout of a keys directory (mode 0700)::

    KEYS/<node>.key                      private key, base64 + newline, mode 0600
    KEYS/gateways/<gateway>.key          a gateway's private key, 0600
    KEYS/public.json                     {node: public key, "gateway:<gateway>": public key}
    KEYS/psk/<network>/<a>--<b>.psk      preshared key of a node pair (a < b), 0600

Gateways have their own namespace of names, so a gateway may share a node's
name: its key lives apart, and public.json names it "gateway:<name>" (":" is
in no name).

Keys are raw 32-byte X25519 keys in base64, exactly as `wg genkey`,
`wg pubkey` and `wg genpsk` print them, so the files can be handed to
`wg set ... private-key FILE` / `preshared-key FILE` as they are.

Nothing here prints, and no report carries a secret: reports hold node names
and paths only. Error messages never quote key material.

Preshared keys: a network with `psk on` needs one PSK per pair of nodes that
are actually WireGuard peers. Creating one for every pair of the network would
be O(n^2) files, most of them unused, so `init_keys` creates none; they are
made on demand by `ensure_psk` (or `psk_for`) when a backend renders a peer.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from hercc import ir
from hercc.diagnostics import OperationError
from hercc.sysio.files import make_dirs, write_atomic

PUBLIC_FILE = "public.json"
PSK_DIR = "psk"
GATEWAY_DIR = "gateways"
GATEWAY_PREFIX = "gateway:"  # a gateway's entry in public.json and in KeysReport
KEY_SUFFIX = ".key"
PSK_SUFFIX = ".psk"
PAIR_SEP = "--"
KEY_BYTES = 32

# The same rule as hercc.values names: safe as a file name, never "." or "..".
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}\Z")


@dataclass(frozen=True)
class KeysReport:
    """What init_keys did. Node names and paths only: never key material."""

    keys_dir: str
    public_file: str
    created: tuple[str, ...]  # new key pair generated
    kept: tuple[str, ...]  # private key already present, left untouched
    pinned: tuple[str, ...]  # public key pinned in the spec: no private key here
    stale: tuple[str, ...]  # have a key here but are no longer in the spec (left alone)
    public_changed: bool  # public.json was (re)written


@dataclass(frozen=True)
class RotateReport:
    node: str
    private_file: str
    public_file: str


# ---------------------------------------------------------------- encoding


def _decode_key(text: str) -> bytes | None:
    """32 bytes from canonical base64, or None. Never raises."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != KEY_BYTES or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def is_valid_key(text: str) -> bool:
    return _decode_key(text) is not None


def _generate_private() -> bytes:
    raw = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    # Clamp like `wg genkey` does; X25519 clamps anyway, so the public key is unchanged.
    clamped = bytearray(raw)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def _public_of_raw(private: bytes) -> str:
    pub = X25519PrivateKey.from_private_bytes(private).public_key()
    return _encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw))


def pubkey_of(private_b64: str) -> str:
    """The public key of a base64 private key, as `wg pubkey` prints it."""
    raw = _decode_key(private_b64.strip())
    if raw is None:
        raise OperationError("invalid WireGuard private key: expected 32 bytes in base64")
    return _public_of_raw(raw)


# ---------------------------------------------------------------- paths


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise OperationError(f"invalid {kind} name {name!r}")
    return name


def private_key_path(keys_dir: str, node: str) -> str:
    return os.path.join(keys_dir, _check_name("node", node) + KEY_SUFFIX)


def gateway_key_path(keys_dir: str, gateway: str) -> str:
    return os.path.join(keys_dir, GATEWAY_DIR, _check_name("gateway", gateway) + KEY_SUFFIX)


def _owner_key_path(keys_dir: str, owner: str) -> str:
    """The private key file of a public.json entry: a node, or "gateway:<name>"."""
    if owner.startswith(GATEWAY_PREFIX):
        return gateway_key_path(keys_dir, owner[len(GATEWAY_PREFIX) :])
    return private_key_path(keys_dir, owner)


def public_keys_path(keys_dir: str) -> str:
    return os.path.join(keys_dir, PUBLIC_FILE)


def psk_path(keys_dir: str, network: str, a: str, b: str) -> str:
    """Where the PSK of the unordered pair {a, b} of `network` lives."""
    _check_name("network", network)
    lo, hi = sorted((_check_name("node", a), _check_name("node", b)))
    if lo == hi:
        raise OperationError(f"a preshared key needs two different nodes, got {a!r} twice")
    if PAIR_SEP in lo or PAIR_SEP in hi:
        # "a" + "b--c" and "a--b" + "c" would share one file name.
        raise OperationError(
            f"cannot name the preshared key of {lo} and {hi}: "
            f"node names containing {PAIR_SEP!r} make PSK file names ambiguous"
        )
    return os.path.join(keys_dir, PSK_DIR, network, f"{lo}{PAIR_SEP}{hi}{PSK_SUFFIX}")


# ---------------------------------------------------------------- file I/O


def _create_secret(path: str, raw: bytes) -> bool:
    """Write a new 0600 secret file; False (and nothing written) if it already exists.

    Whole or not at all; never through a symbolic link (a link at `path` exists).
    """
    try:
        write_atomic(path, _encode(raw) + "\n", 0o600, exclusive=True)
    except FileExistsError:
        return False
    return True


def _replace_secret(path: str, raw: bytes) -> None:
    """Atomically replace a secret file: a 0600 temporary file renamed over it."""
    write_atomic(path, _encode(raw) + "\n", 0o600)


def _read_secret(path: str, what: str) -> bytes:
    """Read a 32-byte base64 secret from a regular file of mode 0600 or stricter."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise OperationError(f"{path}: no {what}") from None
    except OSError as exc:
        raise OperationError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OperationError(f"{path}: the {what} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise OperationError(
                f"{path}: the {what} has mode {mode:04o}, readable or writable by others; "
                f"refusing to use it (run `chmod 600 {path}`)"
            )
        data = fh.read(256)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    raw = _decode_key(text)
    if raw is None:
        raise OperationError(f"{path}: invalid {what}: expected 32 bytes in base64")
    return raw


def read_private_key(keys_dir: str, node: str) -> str:
    """A node's private key (base64). Refuses a file readable by group or others."""
    path = private_key_path(keys_dir, node)
    return _encode(_read_secret(path, f"private key of {node}"))


def read_gateway_key(keys_dir: str, gateway: str) -> str:
    """A gateway's private key (base64), with read_private_key's checks."""
    path = gateway_key_path(keys_dir, gateway)
    return _encode(_read_secret(path, f"private key of gateway {gateway}"))


def _read_owner_key(keys_dir: str, owner: str) -> str:
    path = _owner_key_path(keys_dir, owner)
    return _encode(_read_secret(path, f"private key of {owner}"))


def _read_public(keys_dir: str) -> dict[str, str] | None:
    """public.json validated, or None when it does not exist."""
    path = public_keys_path(keys_dir)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OperationError(f"{path}: cannot read the public keys: {exc}") from None
    if not isinstance(data, dict):
        raise OperationError(f"{path}: expected a JSON object of node -> public key")
    out: dict[str, str] = {}
    for node, key in data.items():
        bare = node.removeprefix(GATEWAY_PREFIX) if isinstance(node, str) else node
        if not isinstance(bare, str) or not _NAME.match(bare):
            raise OperationError(f"{path}: invalid node name {node!r}")
        if not isinstance(key, str) or not is_valid_key(key):
            raise OperationError(
                f"{path}: invalid public key for {node}: expected 32 bytes in base64"
            )
        out[node] = key
    return out


def load_public_keys(keys_dir: str) -> dict[str, str]:
    """{node: public key} from KEYS/public.json, every key checked to be 32 bytes base64."""
    keys = _read_public(keys_dir)
    if keys is None:
        raise OperationError(
            f"{public_keys_path(keys_dir)}: no public keys; run `hercc keys init SPEC --keys "
            f"{keys_dir}`"
        )
    return keys


def _write_public(keys_dir: str, keys: dict[str, str]) -> bool:
    """Write public.json atomically if its content changes; True if written."""
    path = public_keys_path(keys_dir)
    text = ir.dumps(dict(sorted(keys.items())))
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OperationError(f"{path}: cannot read: {exc.strerror}") from None
    write_atomic(path, text, 0o644)  # public keys
    return True


def _key_files(keys_dir: str) -> Iterable[str]:
    """Owners (nodes, "gateway:<name>") that have a private key file in keys_dir."""
    gateways = os.path.join(keys_dir, GATEWAY_DIR)
    found = [*_key_names(keys_dir), *(GATEWAY_PREFIX + n for n in _key_names(gateways))]
    return sorted(found)


def _key_names(directory: str) -> list[str]:
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OperationError(f"{directory}: cannot list: {exc.strerror}") from None
    names = (e[: -len(KEY_SUFFIX)] for e in entries if e.endswith(KEY_SUFFIX))
    return [n for n in names if _NAME.match(n)]


# ---------------------------------------------------------------- operations


def init_keys(model: ir.IR, keys_dir: str) -> KeysReport:
    """Give every node and gateway of the spec a key pair, keeping every key that exists.

    - a node with a pinned `pubkey` gets that key in public.json and no private file
      (an existing private file for it must match the pinned key);
    - a node or gateway with a private file keeps it; its public key is derived from it;
    - any other gets a new key pair.
    Owners that have keys here but are not in the spec are left alone and reported
    as stale. Running it twice changes nothing. No PSK is created (see ensure_psk).
    Gateways appear in public.json and in the report as "gateway:<name>".
    """
    make_dirs(keys_dir, 0o700)
    old_public = _read_public(keys_dir) or {}
    public = dict(old_public)
    created: list[str] = []
    kept: list[str] = []
    pinned: list[str] = []
    owners = [(n.name, n.pubkey) for n in sorted(model.nodes, key=lambda n: n.name)]
    owners += [
        (GATEWAY_PREFIX + g.name, None) for g in sorted(model.gateways, key=lambda g: g.name)
    ]
    if model.gateways:
        make_dirs(os.path.join(keys_dir, GATEWAY_DIR), 0o700)
    for owner, pin in owners:
        path = _owner_key_path(keys_dir, owner)
        exists = os.path.lexists(path)
        if pin is not None:
            if exists and pubkey_of(_read_owner_key(keys_dir, owner)) != pin:
                raise OperationError(
                    f"{path}: this private key does not match the pubkey pinned for "
                    f"{owner} in the spec; remove the file or the pin"
                )
            public[owner] = pin
            pinned.append(owner)
        elif exists:
            public[owner] = pubkey_of(_read_owner_key(keys_dir, owner))
            kept.append(owner)
        else:
            raw = _generate_private()
            if not _create_secret(path, raw):  # created meanwhile by someone else: keep theirs
                public[owner] = pubkey_of(_read_owner_key(keys_dir, owner))
                kept.append(owner)
                continue
            public[owner] = _public_of_raw(raw)
            created.append(owner)
    spec_owners = {owner for owner, _ in owners}
    stale = sorted((set(old_public) | set(_key_files(keys_dir))) - spec_owners)
    changed = _write_public(keys_dir, public)
    return KeysReport(
        keys_dir=keys_dir,
        public_file=public_keys_path(keys_dir),
        created=tuple(created),
        kept=tuple(kept),
        pinned=tuple(pinned),
        stale=tuple(stale),
        public_changed=changed,
    )


def rotate_key(node: str, keys_dir: str) -> RotateReport:
    """Replace one node's (or "gateway:<name>"'s) key pair: the private file atomically,
    then public.json."""
    path = _owner_key_path(keys_dir, node)
    if not os.path.isfile(path):
        raise OperationError(
            f"{node} has no private key in {keys_dir} (pinned in the spec, or not yet created); "
            f"run `hercc keys init SPEC --keys {keys_dir}` first"
        )
    public = _read_public(keys_dir) or {}
    raw = _generate_private()
    _replace_secret(path, raw)
    # public.json after the private key: a crash in between leaves public.json stale,
    # and the next `keys init` derives it again from the private key.
    public[node] = _public_of_raw(raw)
    _write_public(keys_dir, public)
    return RotateReport(node=node, private_file=path, public_file=public_keys_path(keys_dir))


def ensure_psk(keys_dir: str, network: str, a: str, b: str) -> str:
    """Create the PSK of the pair {a, b} in `network` unless it exists; return its path.

    Call it for peers that are actually adjacent; init_keys creates none, since one
    per pair of the network would be O(n^2) files.
    """
    path = psk_path(keys_dir, network, a, b)
    if not os.path.lexists(path):
        make_dirs(os.path.dirname(path), 0o700)  # keys_dir/psk/<network>, parents included
        _create_secret(path, secrets.token_bytes(KEY_BYTES))  # False: a racing writer won
    return path


def psk_for(keys_dir: str, network: str, a: str, b: str) -> str:
    """The PSK (base64) of the pair {a, b} in `network`, created on first use.

    The same for (a, b) and (b, a), and stable across runs.
    """
    path = ensure_psk(keys_dir, network, a, b)
    lo, hi = sorted((a, b))
    return _encode(_read_secret(path, f"preshared key of {lo} and {hi} in {network}"))
