"""Crafted packets for the dataplane tests, with struct: Ethernet, ARP, IPv4, IPv6, TCP, UDP."""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
TCP = 6
UDP = 17
ICMP = 1
SRC_MAC = bytes.fromhex("020000000101")
DST_MAC = bytes.fromhex("020000000102")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(ethertype: int, payload: bytes, dst: bytes = DST_MAC, src: bytes = SRC_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def tcp(sport: int, dport: int, flags: int = 0x10, payload: bytes = b"") -> bytes:
    """A TCP header (data offset 5) without a valid checksum: nothing here checks it."""
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 64,
    frag: int = 0,
    options: bytes = b"",
) -> bytes:
    """An IPv4 packet with a correct header checksum; `frag` is the flags+offset field."""
    ihl = 5 + len(options) // 4
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            4 << 4 | ihl,
            0,
            ihl * 4 + len(payload),
            0x1234,
            frag,
            ttl,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        + options
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, *, hop_limit: int = 64) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def arp_request(sender: str, target: str) -> bytes:
    body = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        ETH_P_IP,
        6,
        4,
        1,
        SRC_MAC,
        ipaddress.IPv4Address(sender).packed,
        bytes(6),
        ipaddress.IPv4Address(target).packed,
    )
    return ether(ETH_P_ARP, body, dst=b"\xff" * 6)
