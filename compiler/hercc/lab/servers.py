"""A workload's small real servers, one process per workload.

    python -m hercc.lab.servers WORKLOAD [--tls CERT KEY] PORT=PROTOCOLS...

It serves every exposed port of the workload (asyncio, the
standard library only), on every address of the workload's namespace:

* a port exposed as `http` and/or `https` peeks at the first byte of each
  connection: a TLS handshake record (0x16) gets TLS with the workload's
  certificate, then HTTP; anything else gets plain HTTP. HTTP/1.1 with
  keep-alive: `GET /healthz` answers 200 "ok", `GET /` answers 200 with the
  workload's name on the first line and the request's Host on the second;
  anything else 404. An idle kept-alive connection is closed after
  IDLE_TIMEOUT, as web servers do, so that a proxy's pooled connections end.
* a port exposed only as `tcp` writes a banner line, "<workload> <port>",
  then echoes what it receives.

It runs until SIGTERM. Nothing is logged per request (a load test would
fill the log). The lab starts it (hercc.lab.workload_servers) and records
its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass

PEEK_TIMEOUT = 10.0  # seconds for a client to send its first byte
IDLE_TIMEOUT = 5.0  # seconds a kept-alive HTTP connection may wait for its next request
HEADER_LIMIT = 16384


@dataclass(frozen=True)
class Listener:
    port: int
    protocols: frozenset[str]  # http, https, tcp


def parse(argv: Sequence[str]) -> tuple[str, ssl.SSLContext | None, list[Listener]]:
    """WORKLOAD [--tls CERT KEY] PORT=PROTO[,PROTO...]..."""
    args = list(argv)
    if not args:
        raise ValueError("usage: WORKLOAD [--tls CERT KEY] PORT=PROTOCOLS...")
    workload = args.pop(0)
    context = None
    if args[:1] == ["--tls"]:
        if len(args) < 3:
            raise ValueError("--tls needs CERT and KEY")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args[1], args[2])
        del args[:3]
    listeners = []
    for word in args:
        port, _, protocols = word.partition("=")
        listeners.append(Listener(int(port), frozenset(protocols.split(","))))
    if any("https" in x.protocols for x in listeners) and context is None:
        raise ValueError("an https port needs --tls CERT KEY")
    return workload, context, listeners


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _peek(sock: socket.socket) -> bytes:
    """The first byte the client sent, left in the socket (b"" if it closed)."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    try:
        await asyncio.wait_for(readable, PEEK_TIMEOUT)
    finally:
        loop.remove_reader(sock.fileno())
    return sock.recv(1, socket.MSG_PEEK)


async def _streams(
    sock: socket.socket, context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=HEADER_LIMIT)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=context)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def _response(status: str, body: str, close: bool) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("ascii") + data


async def _http(workload: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = [*lines[0].split(" "), "", "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        if method not in ("GET", "HEAD"):
            answer = _response("405 Method Not Allowed", "method not allowed\n", close)
        elif path == "/healthz":
            answer = _response("200 OK", "ok\n", close)
        elif path == "/":
            answer = _response("200 OK", f"{workload}\nhost {headers.get('host', '')}\n", close)
        else:
            answer = _response("404 Not Found", "not found\n", close)
        if method == "HEAD":
            answer = answer.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        writer.write(answer)
        await writer.drain()
        if close:
            return


async def _tcp(
    workload: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(f"{workload} {port}\n".encode())
    await writer.drain()
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _serve_one(
    workload: str, listener: Listener, context: ssl.SSLContext | None, sock: socket.socket
) -> None:
    try:
        web = listener.protocols & {"http", "https"}
        tls = False
        if web:
            first = await _peek(sock)
            if not first:
                return
            tls = "https" in web and (first == b"\x16" or "http" not in web)
        reader, writer = await _streams(sock, context if tls else None)
        try:
            if web:
                await _http(workload, reader, writer)
            else:
                await _tcp(workload, listener.port, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, ssl.SSLError, TimeoutError, ValueError):
        pass  # a client that went away or spoke nonsense
    finally:
        sock.close()


async def _accept(workload: str, listener: Listener, context: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    server = _listen(listener.port)
    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn, _ = await loop.sock_accept(server)
        conn.setblocking(False)
        task = asyncio.create_task(_serve_one(workload, listener, context, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def main(argv: Sequence[str]) -> None:
    workload, context, listeners = parse(argv)
    await asyncio.gather(*(_accept(workload, x, context) for x in listeners))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
