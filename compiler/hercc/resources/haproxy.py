"""The `haproxy` resource's two attributes, one rule for the desired side and the reader.

  config   "sha256:<16 hex>" of the configuration text with every backend
           server's address and port masked (`config_digest`): a change of
           addresses only leaves it as it is, so that the plan shows it as a
           change of `servers` alone, which the executor makes through the
           runtime API without a reload.
  servers  the sorted "backend/server=address:port" of every server line
           (`config_servers`), an IPv6 address in brackets; the reader takes
           them from the running HAProxy (`show servers state`,
           `server_entry`).

Both read the text hercc renders (backends/haproxy.py): `backend NAME`
sections with `server NAME ADDRESS:PORT ...` lines.
"""

from __future__ import annotations

import hashlib
import re

from hercc.resources.ids import HaproxyId, format_id
from hercc.resources.model import Resource

__all__ = ["MASK", "config_digest", "config_servers", "haproxy_resource", "server_entry"]

MASK = "{server}"  # stands for a server's address:port in the digested text
_SECTION = re.compile(r"^(\S+)\s+(\S+)")
_SERVER = re.compile(r"^(\s+server\s+)(\S+)(\s+)(\S+)(.*)$")


def server_entry(backend: str, server: str, address: str, port: int | str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{backend}/{server}={host}:{port}"


def _walk(text: str) -> tuple[list[str], list[str]]:
    """The lines with server addresses masked, and the server entries."""
    masked: list[str] = []
    servers: list[str] = []
    backend: str | None = None
    for line in text.splitlines():
        section = _SECTION.match(line)
        if section is not None:
            backend = section.group(2) if section.group(1) == "backend" else None
        server = _SERVER.match(line)
        if server is not None and backend is not None:
            lead, name, gap, where, rest = server.groups()
            servers.append(f"{backend}/{name}={where}")
            line = f"{lead}{name}{gap}{MASK}{rest}"
        masked.append(line)
    return masked, servers


def config_digest(text: str) -> str:
    """The digest of `text` with every server's address:port masked."""
    masked, _ = _walk(text)
    return "sha256:" + hashlib.sha256("\n".join(masked).encode("utf-8")).hexdigest()[:16]


def config_servers(text: str) -> list[str]:
    """Every server of `text` as "backend/server=address:port", sorted."""
    return sorted(_walk(text)[1])


def haproxy_resource(
    ns: str, gateway: str, text: str | None, config: str, servers: list[str]
) -> Resource:
    """The one shape of the resource (no parent: the gateway's namespace is not its own).

    `text` is the configuration itself (Resource.content: what the executor
    installs; None on the live side, which has only the digest).
    """
    return Resource(
        "haproxy",
        format_id(HaproxyId(ns, gateway)),
        {"config": config, "servers": list(servers)},
        content=text,
    )
