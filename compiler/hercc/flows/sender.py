"""The one side effect of flow export: UDP datagrams to a collector."""

from __future__ import annotations

import socket
from typing import Protocol

from hercc.diagnostics import OperationError


class Sender(Protocol):
    def send(self, payload: bytes) -> None: ...

    def close(self) -> None: ...


def parse_collector(text: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" (ir.Netflow.collector's form) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise OperationError(f"collector {text!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


class UdpSender:
    """A UDP socket to one collector (the name resolved once, when made).

    The socket is not connected: a connected one reports an ICMP "port
    unreachable" from an earlier datagram as the failure of the next send,
    which would then be lost. Unconnected, every datagram leaves.
    """

    def __init__(self, collector: str) -> None:
        host, port = parse_collector(collector)
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM
            )[0]
            self._sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise OperationError(
                f"cannot reach collector {collector}: {exc.strerror or exc}"
            ) from None
        self._address = address
        self.collector = collector

    def send(self, payload: bytes) -> None:
        try:
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            raise OperationError(
                f"cannot send to collector {self.collector}: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        self._sock.close()
