"""A node's IPsec connections, read from its charon over VICI.

charon is reached through its VICI socket: the system's (`DEFAULT_VICI`) on
a real node, another one where several charons share a machine (the lab's,
one per node in its own mount namespace: lab/enterprise_ipsec.py). `Vici` is
the one boundary in front of it (`ViciSocket`: the strongSwan `vici`
library over a Unix socket, one connection per call, bounded), so tests use
a fake.

Which connections are ours: the node's record `<state_dir>/<node>.ipsec.json`
(`IpsecRecord`), written by the executor, maps each connection it loaded to
its content (resources/ipsec.py: the tree, the secret's name and the
certificates, never the key). A connection charon holds that the record does not list is foreign, by
its name. The record also gives the live side its `config` digest:
`list-conns` reports neither proposals nor ports.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hercc.diagnostics import OperationError
from hercc.resources.ipsec import (
    CHILD_INSTALLED,
    DEFAULT_VICI,
    IpsecContent,
    config_digest,
    credentials,
)
from hercc.resources.model import FORCES_NEW, SENSITIVE, Resource
from hercc.sysio.files import write_atomic

__all__ = [
    "DEFAULT_VICI",
    "IpsecQuery",
    "IpsecRecord",
    "Vici",
    "ViciError",
    "ViciSocket",
    "read_ipsec",
    "record_file",
]

TIMEOUT = 30.0  # seconds per VICI call; an initiate waits for IKE and the CHILD_SA


class ViciError(OperationError):
    """charon could not be reached, or refused a command."""


class Vici(Protocol):
    """charon's VICI commands, messages as plain data (text, lists, sections)."""

    def request(self, command: str, message: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One command; its answer. ViciError when charon says it failed."""
        ...

    def stream(
        self, command: str, event: str, message: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """A command that streams `event`s (list-conns, list-sas, initiate); the events."""
        ...


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _text(v) for k, v in value.items()}
    return value


class ViciSocket:
    """The real charon, at `path` (see the module docstring)."""

    def __init__(self, path: str = DEFAULT_VICI, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def _session(self) -> tuple[socket.socket, Any]:
        import vici  # type: ignore[import-untyped]

        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise ViciError(
                f"cannot reach charon at {self.path}: {exc.strerror or exc} "
                "(is strongSwan's charon running? name its socket with --vici)"
            ) from None
        return sock, vici.Session(sock)

    def _call(self, command: str, run: Any) -> Any:
        import vici

        sock, session = self._session()
        try:
            return _text(run(session))
        except (vici.exception.CommandException, vici.exception.SessionException) as exc:
            raise ViciError(f"charon at {self.path}: {command}: {exc}") from None
        except OSError as exc:
            raise ViciError(f"charon at {self.path}: {command}: {exc}") from None
        finally:
            sock.close()

    def request(self, command: str, message: Mapping[str, Any] | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(
            command, lambda s: s.request(command, dict(message) if message else None)
        )
        return answer

    def stream(
        self, command: str, event: str, message: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []

        def run(s: Any) -> list[dict[str, Any]]:
            for e in s.streamed_request(command, event, dict(message) if message else None):
                events.append(_text(e))
            return events

        try:
            return list(self._call(command, run))
        except ViciError as exc:
            said = _reason(events)
            raise ViciError(f"{exc} ({said})" if said else str(exc)) from None


def _reason(events: list[dict[str, Any]]) -> str:
    """charon's last IKE and CFG log lines of a failed command (`control-log` events): why
    an initiate failed ("no trusted RSA public key found for ...", "received
    AUTHENTICATION_FAILED notify error")."""
    lines = [
        str(e["msg"]).strip() for e in events if e.get("group") in ("IKE", "CFG") and "msg" in e
    ]
    return "; ".join(lines[-2:])


def record_file(state_dir: str | Path, node: str) -> Path:
    return Path(state_dir) / f"{node}.ipsec.json"


@dataclass(frozen=True)
class IpsecRecord:
    """The connections a node loaded into charon: name -> content (JSON file, no keys)."""

    path: Path

    def load(self) -> dict[str, IpsecContent]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OperationError(f"cannot read {self.path}: {exc}") from None
        return {name: IpsecContent.from_text(text) for name, text in data.items()}

    def _write(self, data: Mapping[str, IpsecContent]) -> None:
        texts = {name: c.to_text() for name, c in sorted(data.items())}
        write_atomic(self.path, json.dumps(texts, indent=2) + "\n", mode=0o600)

    def add(self, content: IpsecContent) -> None:
        self._write({**self.load(), content.connection: content})

    def remove(self, connection: str) -> None:
        data = self.load()
        if data.pop(connection, None) is not None:
            self._write(data)


@dataclass(frozen=True)
class IpsecQuery:
    """What to read: the charon (`vici`) and the node's record of what it loaded."""

    vici: Vici
    record: IpsecRecord


def _conns(vici: Vici) -> Iterator[tuple[str, dict[str, Any]]]:
    for event in vici.stream("list-conns", "list-conn"):
        yield from event.items()


def _installed(vici: Vici) -> set[str]:
    """The names of the CHILD_SAs that are installed."""
    out: set[str] = set()
    for event in vici.stream("list-sas", "list-sa"):
        for ike in event.values():
            for child in (ike.get("child-sas") or {}).values():
                if child.get("state") == CHILD_INSTALLED:
                    out.add(str(child.get("name")))
    return out


def read_ipsec(query: IpsecQuery) -> tuple[list[Resource], set[str]]:
    """The node's connections in charon as `ipsec` resources, and the foreign ones' names."""
    ours = query.record.load()
    shared = set(query.vici.request("get-shared").get("keys") or ())
    keys: set[str] = set()
    if any(c.certs for c in ours.values()):  # private keys by id: only certificates need them
        keys = set(query.vici.request("get-keys").get("keys") or ())
    installed = _installed(query.vici)
    resources: list[Resource] = []
    foreign: set[str] = set()
    for name, conn in _conns(query.vici):
        if name not in ours:
            foreign.add(name)
            continue
        child = (conn.get("children") or {}).get(name, {})
        attrs: dict[str, Any] = {
            "local_addrs": list(conn.get("local_addrs") or ()),
            "remote_addrs": list(conn.get("remote_addrs") or ()),
            "local_ts": list(child.get("local-ts") or ()),
            "remote_ts": list(child.get("remote-ts") or ()),
            "config": config_digest(ours[name].tree),
            **credentials(ours[name], shared, keys),
        }
        if name in installed:
            attrs["child"] = CHILD_INSTALLED
        resources.append(
            Resource(
                "ipsec",
                name,
                attrs,
                SENSITIVE.get("ipsec", frozenset()),
                FORCES_NEW.get("ipsec", frozenset()),
            )
        )
    return resources, foreign
