"""The values of `secret("name")`: from `--secrets FILE`, else from HERC_SECRET_<NAME>.

FILE must be a regular file of mode 0600 (checked on the open descriptor): a
YAML mapping of names to values, which `name: value` lines already are. Every
scalar is read as text (YAML's base loader), so a key such as 0x1F or 012 stays
what was written. HERC_SECRET_<NAME> is the name in upper case with "-" as "_".
The values live in memory only: they are returned to the caller that writes
nodes/<node>/secrets/, never put in the IR, a plan, the manifest or a message.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

import yaml

from hercc.diagnostics import OperationError

ENV_PREFIX = "HERC_SECRET_"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper().replace("-", "_")


def read_secrets_file(path: str) -> dict[str, str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OperationError(f"cannot read the secrets file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, encoding="utf-8") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OperationError(f"the secrets file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode != 0o600:
            raise OperationError(
                f"refusing the secrets file {path}: its mode is {mode:04o}, not 0600 "
                f"(chmod 600 {path})"
            )
        text = f.read()
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:  # the message quotes no value: only where it failed
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise OperationError(f"the secrets file {path} is not YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise OperationError(f"the secrets file {path} must map names to values (name: value)")
    return {str(k): v for k, v in data.items()}


def resolve(names: Iterable[str], path: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """The value of every name, from the file at `path` (when given) or `env`.

    A name found in neither is an error that lists every missing one and where
    each was looked for.
    """
    from_file = read_secrets_file(path) if path is not None else {}
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in sorted(set(names)):
        value = from_file.get(name, env.get(env_name(name)))
        if value is None or value == "":
            missing.append(name)
        else:
            values[name] = value
    if missing:
        where = f"in {path} or " if path is not None else ""
        listed = ", ".join(f'"{n}" ({where}{env_name(n)})' for n in missing)
        raise OperationError(f"missing secret {listed}")
    return values
