"""hercc.state: WireGuard drivers, the live-state reader and the ownership registry.

Unit tests use fakes behind the one-method boundaries (UAPI transport, Netlink,
Sysctl, WireGuardDriver) and a fake UAPI server on a unix socket. Live tests
need root and wireguard-go; they use names unique to this run (`hst<pid>...`),
kill only the processes they started, and delete what they created.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hercc.diagnostics import OperationError
from hercc.resources.canonical import (
    canonical_allowed_ips,
    canonical_endpoint,
    canonical_private_key,
)
from hercc.resources.errors import InvalidValue
from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.ids import veth_pair_end
from hercc.resources.model import OWNER_ALIAS
from hercc.state import (
    AutoWireGuard,
    KernelWireGuard,
    OwnedRegistry,
    ProcSysctl,
    PyrouteNetlink,
    RegistryError,
    StateError,
    StateReader,
    UapiWireGuard,
    WgDevice,
    WgPeer,
    WireGuardError,
    WireGuardUnavailable,
    kernel_unavailable_reason,
    owner_alias,
)
from hercc.state.netlink import Address, Link, NsSnapshot, Route
from hercc.state.sysctl import sysctl_path
from hercc.state.wireguard.kernel import device_from_genl, genl_peer
from hercc.state.wireguard.model import resolved_endpoint
from hercc.state.wireguard.uapi import device_from_uapi

PID = os.getpid()
PREFIX = f"hst{PID}"
NODE = "n1"
ALIAS = owner_alias(NODE)


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def hexkey(b64: str) -> str:
    return base64.b64decode(b64).hex()


def fp(secret: str | None) -> str | None:
    """Asserts compare fingerprints only, so a failing test never prints a key."""
    return None if secret is None else fingerprint(secret)


# --------------------------------------------------------------------------- normalizers


def test_canonical_forms() -> None:
    assert canonical_allowed_ips(["10.0.0.1/24", "fd00::1/64", "10.0.0.0/24", "1.2.3.4/32"]) == [
        "1.2.3.4/32",
        "10.0.0.0/24",
        "fd00::/64",
    ]
    assert canonical_endpoint("192.0.2.1:51820") == "192.0.2.1:51820"
    assert canonical_endpoint("[2001:DB8::1]:5") == "[2001:db8::1]:5"
    assert canonical_endpoint("example.invalid:5") == "example.invalid:5"
    assert resolved_endpoint("localhost:7") in ("127.0.0.1:7", "[::1]:7")
    assert resolved_endpoint("[2001:DB8::1]:5") == "[2001:db8::1]:5"
    for bad in ("nohost", "1.2.3.4:99999", ":5", "a b:5"):
        with pytest.raises(InvalidValue):
            canonical_endpoint(bad)
    with pytest.raises(InvalidValue):
        canonical_allowed_ips(["10.0.0.0/33"])


# --------------------------------------------------------------------------- UAPI, faked


def uapi_answer(device: WgDevice, private_key: str | None) -> bytes:
    """What wireguard-go prints for `get=1` (field order as wireguard-go 0.0.2023)."""
    lines = []
    if private_key:
        lines.append(f"private_key={hexkey(private_key)}")
    if device.listen_port:
        lines.append(f"listen_port={device.listen_port}")
    if device.fwmark:
        lines.append(f"fwmark={device.fwmark}")
    for pub, p in device.peers.items():
        lines.append(f"public_key={hexkey(pub)}")
        psk = hexkey(p.preshared_key) if p.preshared_key else "0" * 64
        lines += [f"preshared_key={psk}", "protocol_version=1"]
        if p.endpoint:
            lines.append(f"endpoint={p.endpoint}")
        lines += [
            "last_handshake_time_sec=0",
            "last_handshake_time_nsec=0",
            f"tx_bytes={p.tx}",
            f"rx_bytes={p.rx}",
            f"persistent_keepalive_interval={p.keepalive or 0}",
        ]
        lines += [f"allowed_ip={ip}" for ip in p.allowed_ips]
    return ("".join(f"{line}\n" for line in lines) + "errno=0\n\n").encode()


def many_peers(n: int) -> dict[str, WgPeer]:
    return {
        key(): WgPeer(
            endpoint=f"[fd00::{i:x}]:{1000 + i}" if i % 2 else f"192.0.2.{i % 250}:{1000 + i}",
            allowed_ips=canonical_allowed_ips(
                [f"10.{i // 256}.{i % 256}.0/24", f"fd10::{i:x}/128"]
            ),
            keepalive=25 if i % 3 == 0 else None,
            preshared_key=key() if i % 5 == 0 else None,
            rx=i,
            tx=2 * i,
        )
        for i in range(n)
    }


class FakeServer:
    """A UAPI server on a unix socket that answers every request with `reply(request)`.

    Answers go out in `chunk`-byte pieces, `delay` seconds apart, to exercise
    reading until the errno line.
    """

    def __init__(
        self, path: Path, reply: Callable[[bytes], bytes | None], chunk: int = 4096
    ) -> None:
        self.path = path
        self.reply = reply
        self.chunk = chunk
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    while not data.endswith(b"\n\n"):
                        more = conn.recv(65536)
                        if not more:
                            break
                        data += more
                self.requests.append(data)
                answer = self.reply(data)
                if answer is None:  # hang: say nothing until the client gives up
                    self.stop.wait(2)
                    continue
                with contextlib.suppress(OSError):
                    for i in range(0, len(answer), self.chunk):
                        conn.sendall(answer[i : i + self.chunk])
                    conn.recv(1)  # keep the connection until the client closes it

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(ifname: str, reply: Callable[[bytes], bytes | None], chunk: int = 4096) -> FakeServer:
        server = FakeServer(tmp_path / f"{ifname}.sock", reply, chunk)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def test_uapi_reads_a_large_answer_in_pieces(tmp_path: Path, serve: Any) -> None:
    priv = key()
    want = WgDevice(private_key=priv, listen_port=51820, fwmark=7, peers=many_peers(1000))
    text = uapi_answer(want, priv)
    assert len(text) > 200_000
    serve("wgt0", lambda _req: text, chunk=1000)
    got = UapiWireGuard(tmp_path, timeout=5).read("wgt0")
    assert got.listen_port == 51820 and got.fwmark == 7
    assert fp(got.private_key) == fp(priv)
    assert set(got.peers) == set(want.peers)
    for pub, peer in want.peers.items():
        g = got.peers[pub]
        assert fp(g.preshared_key) == fp(peer.preshared_key)
        assert g == peer  # WgPeer's repr leaves the preshared key out


def test_uapi_errors_are_typed_and_keyless(tmp_path: Path, serve: Any) -> None:
    server = serve("wgt1", lambda _req: b"errno=-22\n\n")
    wg = UapiWireGuard(tmp_path, timeout=2)
    priv = key()
    with pytest.raises(WireGuardError) as info:
        wg.set_device("wgt1", private_key=priv, listen_port=1)
    message = str(info.value)
    assert "errno 22" in message and "EINVAL" in message
    request = server.requests[-1].decode()
    assert request.startswith("set=1\n") and request.endswith("\n\n")
    assert f"private_key={hexkey(priv)}\n" in request
    assert priv not in message and hexkey(priv) not in message
    assert isinstance(info.value, OperationError)
    # a malformed key is refused before anything is sent, without echoing it
    bad = "x" * 43 + "="
    with pytest.raises(WireGuardError) as info:
        wg.set_peer("wgt1", key(), preshared_key=bad)
    assert bad not in str(info.value)
    with pytest.raises(WireGuardUnavailable, match="no WireGuard UAPI socket"):
        wg.read("absent")
    with pytest.raises(WireGuardError, match="invalid interface name"):
        wg.read("../etc")


def test_uapi_times_out(tmp_path: Path, serve: Any) -> None:
    serve("wgt2", lambda _req: None)
    serve("wgt3", lambda _req: b"private_key=00\n")  # never ends: no errno line
    wg = UapiWireGuard(tmp_path, timeout=0.3)
    for name in ("wgt2", "wgt3"):
        start = time.monotonic()
        with pytest.raises(WireGuardError, match=r"no complete answer within 0\.3 s"):
            wg.read(name)
        assert time.monotonic() - start < 2


def test_uapi_set_peer_request(tmp_path: Path, serve: Any) -> None:
    server = serve("wgt4", lambda _req: b"errno=0\n\n")
    wg = UapiWireGuard(tmp_path)
    pub, psk = key(), key()
    wg.set_peer("wgt4", pub, "[2001:db8::1]:51820", ["10.0.0.1/24", "fd00::/64"], 25, psk)
    wg.set_peer("wgt4", pub, None, ["10.0.0.0/24"], None, None)
    wg.remove_peer("wgt4", pub)
    first, second, third = (r.decode().splitlines() for r in server.requests)
    assert first == [
        "set=1",
        f"public_key={hexkey(pub)}",
        f"preshared_key={hexkey(psk)}",
        "endpoint=[2001:db8::1]:51820",
        "persistent_keepalive_interval=25",
        "replace_allowed_ips=true",
        "allowed_ip=10.0.0.0/24",
        "allowed_ip=fd00::/64",
        "",
    ]
    assert "preshared_key=" + "0" * 64 in second and "persistent_keepalive_interval=0" in second
    assert not any(line.startswith("endpoint=") for line in second)
    assert third == ["set=1", f"public_key={hexkey(pub)}", "remove=true", ""]


def test_uapi_parse_defaults() -> None:
    pub = key()
    dev = device_from_uapi([("public_key", hexkey(pub)), ("protocol_version", "1")])
    assert dev.private_key is None and dev.listen_port is None and dev.fwmark is None
    assert dev.peers[pub] == WgPeer()
    with pytest.raises(WireGuardError, match="malformed public key"):
        device_from_uapi([("public_key", "abcd")])


# --------------------------------------------------------------------------- kernel driver


def test_kernel_detection() -> None:
    has_module = Path("/sys/module/wireguard").exists()
    reason = kernel_unavailable_reason()
    assert (reason is None) == has_module, reason
    assert KernelWireGuard.available() == has_module
    if not has_module:
        assert reason is not None and "no wireguard kernel module" in reason
        wg = AutoWireGuard(UapiWireGuard("/nonexistent-hst"))
        with pytest.raises(WireGuardUnavailable, match="no wireguard kernel module"):
            wg.read("wg-absent")


def test_kernel_messages_round_trip() -> None:
    """The genl peer we would send, encoded and decoded by pyroute2, reads back the same."""
    from pyroute2.netlink.generic.wireguard import (  # type: ignore[import-untyped]
        AsyncWireGuard,
        wgmsg,
    )

    priv, pub, psk = key(), key(), key()
    msg = wgmsg()
    msg["cmd"] = 0
    msg["version"] = 1
    msg["attrs"] += [
        ["WGDEVICE_A_IFNAME", "wg0"],
        ["WGDEVICE_A_PRIVATE_KEY", priv],
        ["WGDEVICE_A_LISTEN_PORT", 51820],
    ]
    peer = genl_peer(pub, "[::1]:7", ["fd00::1/64", "10.1.0.0/16"], 25, psk)
    AsyncWireGuard._wg_set_peer(AsyncWireGuard.__new__(AsyncWireGuard), msg, peer)
    # the same peer continued in a second message, as a large dump does
    more = wgmsg()
    more["cmd"] = 0
    more["version"] = 1
    AsyncWireGuard._wg_set_peer(
        AsyncWireGuard.__new__(AsyncWireGuard),
        more,
        {"public_key": pub, "allowed_ips": ["192.0.2.0/24"]},
    )
    decoded = []
    for m in (msg, more):
        m.encode()
        d = wgmsg(m.data)
        d.decode()
        decoded.append(d)
    dev = device_from_genl(decoded)
    assert fp(dev.private_key) == fp(priv)
    assert dev.listen_port == 51820 and dev.fwmark is None
    got = dev.peers[pub]
    assert got.endpoint == "[::1]:7" and got.keepalive == 25
    assert got.allowed_ips == ["10.1.0.0/16", "192.0.2.0/24", "fd00::/64"]
    assert fp(got.preshared_key) == fp(psk)


def test_kernel_live_part() -> None:
    if kernel_unavailable_reason() is not None:
        pytest.skip("no wireguard kernel module")
    pytest.skip("kernel WireGuard live test not written: no machine with the module yet")


# --------------------------------------------------------------------------- reader, faked


class FakeNetlink:
    def __init__(self, snaps: Iterable[NsSnapshot], extra: Iterable[str] = ()) -> None:
        self.snaps = {s.name: s for s in snaps}
        self.extra = list(extra)

    def namespaces(self) -> list[str]:
        return sorted([*self.snaps, *self.extra])

    def snapshot(self, ns: str) -> NsSnapshot | None:
        return self.snaps.get(ns)


class FakeWireGuard:
    def __init__(self, devices: dict[str, WgDevice]) -> None:
        self.devices = devices

    def read(self, ifname: str, *, netns: str | None = None) -> WgDevice:
        if ifname not in self.devices:
            raise WireGuardUnavailable(f"no {ifname}")
        return self.devices[ifname]

    def set_device(self, ifname: str, **kw: Any) -> None:
        raise AssertionError("a reader never writes")

    def set_peer(self, *a: Any, **kw: Any) -> None:
        raise AssertionError("a reader never writes")

    def remove_peer(self, *a: Any, **kw: Any) -> None:
        raise AssertionError("a reader never writes")


class FakeSysctl:
    def __init__(self, values: dict[str, dict[str, str]]) -> None:
        self.values = values

    def read(self, ns: str, keys: Iterable[str]) -> dict[str, str]:
        return {k: self.values[ns][k] for k in keys if k in self.values.get(ns, {})}


def test_reader_with_fakes() -> None:
    priv, pub, psk = key(), key(), key()
    a = NsSnapshot(
        "a",
        links=(
            Link(1, "lo", None, None, 65536, True),
            Link(2, "wg0", "tun", ALIAS, 1420, True),
            Link(3, "v0", "veth", ALIAS, 1500, True, peer_index=7, peer_netns="b"),
            Link(4, "eth0", "veth", None, 1500, True, peer_index=9, peer_netns=None),
            Link(5, "tun9", "tun", ALIAS, 1500, False),  # our alias but no WireGuard behind it
            Link(6, "dum", "dummy", ALIAS, 1500, False),
            Link(8, "other", "veth", f"{OWNER_ALIAS}:n2", 1500, True, peer_index=9),
        ),
        addresses=(
            Address(1, "127.0.0.1/8"),
            Address(2, "10.20.0.1/16"),
            Address(2, "fd20:0:0::1/64"),
            Address(2, "fe80::5/64", proto=3),  # the kernel's link-local (6.3+): ignored
            Address(2, "fe80::a8c1:abff:fe00:1/64"),  # EUI-64, no IFA_PROTO (< 6.3): ignored
            Address(2, "fe80::9c3e:1:2:3/64", flags=0x880),  # stable privacy: ignored
            Address(3, "fe80::1234/64", proto=3),
            Address(3, "fe80::1/64", flags=0x82),  # added by hand (nodad): ours
            Address(3, "2001:db8::9/64", proto=2, flags=0),  # SLAAC: ignored
            Address(3, "192.0.2.1/24"),
            Address(4, "198.51.100.1/24"),
        ),
        routes=(
            Route("10.30.0.0/16", oif=2, proto=3),
            Route("10.30.0.0/16", oif=2, proto=3, priority=5, gateway="10.20.0.9"),
            Route("10.20.0.0/16", oif=2, proto=2),  # proto kernel
            Route("0.0.0.0/0", oif=3, gateway="192.0.2.254", proto=4),
            Route("10.99.0.0/16", oif=2, proto=3, table=100),
            Route("203.0.113.0/24", oif=4, proto=3),  # on a foreign interface
            Route("fe80::/64", oif=3, proto=3),
        ),
    )
    b = NsSnapshot("b", links=(Link(7, "v1", "veth", None, 1500, True, 3, "a"),))
    devices = {
        "wg0": WgDevice(
            private_key=priv,
            listen_port=51820,
            peers={
                pub: WgPeer("192.0.2.7:51820", ["10.20.0.2/32"], 25, psk),
                key(): WgPeer(None, [], None, None),
            },
        )
    }
    reader = StateReader(
        FakeNetlink([a, b], extra=["c"]),
        FakeWireGuard(devices),
        FakeSysctl({"a": {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "0"}}),
    )
    live = reader.read(
        NODE,
        ["a", "gone"],
        also=["b"],
        sysctls={
            "a": ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "x.y"],
            "gone": ["z"],
        },
    )
    st = live.state
    assert live.foreign == {
        "b",
        "c",
        "a/lo",
        "a/eth0",
        "a/tun9",
        "a/dum",
        "a/other",
        "b/v1",
        "a/203.0.113.0/24",
    }
    assert "netns.a" in st and "netns.gone" not in st and "netns.b" not in st
    wg = st["wireguard.a/wg0"]
    assert dict(wg.attrs) == {
        "listen_port": 51820,
        "mtu": 1420,
        "up": True,
        "private_key": private_key_fingerprint(priv),
        "fwmark": None,
    }
    assert wg.sensitive == {"private_key"} and wg.parent == "netns.a"
    peer = st[f"peer.a/wg0/{pub}"]
    assert dict(peer.attrs) == {
        "endpoint": "192.0.2.7:51820",
        "allowed_ips": ["10.20.0.2/32"],
        "keepalive": 25,
        "preshared_key": fingerprint(psk),
    }
    assert peer.parent == "wireguard.a/wg0" and peer.sensitive == {"preshared_key"}
    assert dict(st["veth.a/v0"].attrs) == {"peer_netns": "b", "peer_ifname": "v1", "mtu": 1500}
    addresses = sorted(r.id for r in st.values() if r.kind == "address")
    assert addresses == [
        "a/v0/192.0.2.1/24",
        "a/v0/fe80::1/64",
        "a/wg0/10.20.0.1/16",
        "a/wg0/fd20::1/64",
    ]
    routes = {r.id: dict(r.attrs) for r in st.values() if r.kind == "route"}
    assert routes == {
        "a/10.30.0.0/16": {"dev": "wg0", "via": None},
        "a/0.0.0.0/0": {"dev": "v0", "via": "192.0.2.254"},
    }
    assert dict(st["sysctl.a/net.ipv4.ip_forward"].attrs) == {"value": "1"}
    # a sysctl at its default ("0") is no resource; a missing key is none either
    assert not any(r.kind == "sysctl" and r.id != "a/net.ipv4.ip_forward" for r in st.values())
    # nothing secret anywhere in the state
    dumped = json.dumps([r.to_data() for r in st.values()])
    assert priv not in dumped and psk not in dumped


def _pair(inner_alias: str | None = ALIAS, inner_name: str = "eth0") -> list[NsSnapshot]:
    """A workload's veth pair: hv-web in n (network side), `inner_name` in w."""
    n = NsSnapshot(
        "n",
        links=(Link(3, "hv-web", "veth", ALIAS, 1420, True, peer_index=2, peer_netns="w"),),
        addresses=(Address(3, "fe80::1/64", flags=0x82),),
        routes=(Route("10.0.0.2/32", oif=3, proto=3),),
    )
    w = NsSnapshot(
        "w",
        links=(
            Link(1, "lo", None, None, 65536, True),
            Link(2, inner_name, "veth", inner_alias, 1420, True, peer_index=3, peer_netns="n"),
        ),
        addresses=(Address(2, "10.0.0.2/32"),),
        routes=(Route("0.0.0.0/0", oif=2, gateway="10.0.0.1", proto=3),),
    )
    return [n, w]


def test_reader_reports_a_veth_pair_once_by_the_desired_rule() -> None:
    reader = StateReader(FakeNetlink(_pair()), FakeWireGuard({}), FakeSysctl({}))
    st = reader.read(NODE, ["n", "w"]).state
    veths = {a: dict(r.attrs) for a, r in st.items() if r.kind == "veth"}
    assert veths == {"veth.n/hv-web": {"peer_netns": "w", "peer_ifname": "eth0", "mtu": 1420}}
    # the workload end's addresses and routes hang under the pair
    for address in ("address.w/eth0/10.0.0.2/32", "route.w/0.0.0.0/0", "route.n/10.0.0.2/32"):
        assert st[address].parent == "veth.n/hv-web", address
    assert st["address.n/hv-web/fe80::1/64"].parent == "veth.n/hv-web"
    # the rule is the desired state's: the end not named workload_ifname names the pair
    assert veth_pair_end("n/hv-web", "w/eth0") == "n/hv-web"
    assert veth_pair_end("w/eth0", "n/hv-web") == "n/hv-web"
    renamed = StateReader(FakeNetlink(_pair(inner_name="wl0")), FakeWireGuard({}), FakeSysctl({}))
    st = renamed.read(NODE, ["n", "w"], workload_ifname="wl0").state
    assert [a for a, r in st.items() if r.kind == "veth"] == ["veth.n/hv-web"]
    # neither end called so: the smaller id, still once
    st = renamed.read(NODE, ["n", "w"]).state
    assert [a for a, r in st.items() if r.kind == "veth"] == ["veth.n/hv-web"]
    # an end that is not ours, or in a namespace not read, leaves the other end as it is
    foreign_end = StateReader(FakeNetlink(_pair(inner_alias=None)), FakeWireGuard({}), None)
    st = foreign_end.read(NODE, ["n", "w"]).state
    assert [a for a, r in st.items() if r.kind == "veth"] == ["veth.n/hv-web"]
    st = reader.read(NODE, ["w"]).state
    assert [a for a, r in st.items() if r.kind == "veth"] == ["veth.w/eth0"]
    assert st["address.w/eth0/10.0.0.2/32"].parent == "veth.w/eth0"


def test_sysctl_paths() -> None:
    assert sysctl_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert (
        sysctl_path("net/ipv4/conf/eth0.5/forwarding")
        == "/proc/sys/net/ipv4/conf/eth0.5/forwarding"
    )
    for bad in ("../../etc/shadow", "net/../../x", "", "a b", "/abs"):
        with pytest.raises(StateError):
            sysctl_path(bad)


# --------------------------------------------------------------------------- registry


def test_registry_round_trip(tmp_path: Path) -> None:
    reg = OwnedRegistry(NODE, tmp_path / "state")
    assert reg.load() == frozenset()
    assert reg.add("ns-b") == {"ns-b"}
    assert reg.add("ns-a") == {"ns-a", "ns-b"}
    assert reg.add("ns-a") == {"ns-a", "ns-b"}
    data = json.loads((tmp_path / "state" / f"{NODE}.json").read_text())
    assert data == {"version": 1, "node": NODE, "namespaces": ["ns-a", "ns-b"]}
    assert reg.remove("ns-b") == {"ns-a"}
    assert reg.remove("never") == {"ns-a"}
    assert OwnedRegistry(NODE, tmp_path / "state").load() == {"ns-a"}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [f"{NODE}.json"]
    reg.path.write_text("{broken")
    with pytest.raises(RegistryError, match=r"n1\.json:1:2"):
        reg.load()
    reg.path.write_text(json.dumps({"version": 1, "node": "n2", "namespaces": []}))
    with pytest.raises(RegistryError, match="belongs to node 'n2'"):
        reg.load()
    with pytest.raises(RegistryError):
        OwnedRegistry("../x", tmp_path)


# --------------------------------------------------------------------------- live


def live_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [t for t in ("ip", "wireguard-go", "wg", "grep") if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    return None


live = pytest.mark.skipif(live_reason() is not None, reason=live_reason() or "")


def sh(*argv: str, input: str | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=20, input=input, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    return done.stdout


class Live:
    """Namespaces and wireguard-go processes this test made, removed at the end."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.count = 0

    def netns(self, suffix: str) -> str:
        name = f"{PREFIX}{suffix}"
        assert not Path("/run/netns", name).exists(), f"{name} exists already"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def wireguard_go(self, ns: str) -> str:
        self.count += 1
        ifname = f"{PREFIX}w{self.count}"
        sock = Path("/var/run/wireguard", f"{ifname}.sock")
        assert not sock.exists(), f"{sock} exists already"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "wireguard-go", "-f", ifname],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "WG_PROCESS_FOREGROUND": "1"},
            start_new_session=True,
        )
        self.procs[ifname] = proc
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None, f"wireguard-go {ifname} exited {proc.returncode}"
            assert time.monotonic() < deadline, f"wireguard-go made no {sock} within 10 s"
            time.sleep(0.02)
        return ifname

    def close(self) -> None:
        for ifname, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
            with contextlib.suppress(FileNotFoundError):
                Path("/var/run/wireguard", f"{ifname}.sock").unlink()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


@pytest.fixture
def lab() -> Iterator[Live]:
    reason = live_reason()
    if reason is not None:
        pytest.skip(reason)
    env = Live()
    try:
        yield env
    finally:
        env.close()


@live
def test_live_thousand_peers(lab: Live) -> None:
    ns = lab.netns("p")
    ifname = lab.wireguard_go(ns)
    wg = UapiWireGuard()
    priv = key()
    wg.set_device(ifname, private_key=priv, listen_port=41000 + PID % 20000)
    sh("ip", "-n", ns, "link", "set", ifname, "up")
    want = many_peers(1000)
    start = time.monotonic()
    for pub, p in want.items():
        wg.set_peer(ifname, pub, p.endpoint, p.allowed_ips, p.keepalive, p.preshared_key)
    load_s = time.monotonic() - start
    start = time.monotonic()
    got = wg.read(ifname)
    read_s = time.monotonic() - start
    print(
        f"UAPI: 1,000 set_peer calls in {load_s:.3f} s, one read of 1,000 peers in {read_s:.3f} s"
    )
    # the device clamps the key it is given; canonical_private_key predicts that
    assert fp(got.private_key) == fp(canonical_private_key(priv))
    assert got.listen_port == 41000 + PID % 20000
    assert set(got.peers) == set(want)
    for pub, p in want.items():
        g = got.peers[pub]
        assert (g.endpoint, g.allowed_ips, g.keepalive) == (
            p.endpoint,
            p.allowed_ips,
            p.keepalive,
        ), pub
        assert fp(g.preshared_key) == fp(p.preshared_key), pub
    # wg(8) agrees on the peers (an independent check of the hex/base64 conversion)
    dump = sh("ip", "netns", "exec", ns, "wg", "show", ifname, "peers").split()
    assert set(dump) == set(want)
    # update one in place, remove another, remove it again (already gone: fine)
    first, second = list(want)[:2]
    wg.set_peer(ifname, first, "192.0.2.200:9", ["10.250.0.0/16"], None, None)
    wg.remove_peer(ifname, second)
    wg.remove_peer(ifname, second)
    after = wg.read(ifname)
    assert len(after.peers) == 999 and second not in after.peers
    assert after.peers[first].endpoint == "192.0.2.200:9"
    assert after.peers[first].allowed_ips == ["10.250.0.0/16"]
    assert after.peers[first].keepalive is None and fp(after.peers[first].preshared_key) is None
    # AutoWireGuard picks UAPI for it
    assert AutoWireGuard().driver_for(ifname).__class__ is UapiWireGuard
    with pytest.raises(WireGuardError, match="refused"):
        wg.set_device(ifname, fwmark=-1)
    assert load_s < 20 and read_s < 2


@live
def test_live_reader(lab: Live, tmp_path: Path) -> None:
    a = lab.netns("a")
    b = lab.netns("b")
    other = lab.netns("x")  # exists, not ours
    ifname = lab.wireguard_go(a)
    priv, pub = canonical_private_key(key()), key()
    wg = UapiWireGuard()
    wg.set_device(ifname, private_key=priv, listen_port=42000 + PID % 20000)
    wg.set_peer(ifname, pub, "192.0.2.7:51820", ["10.20.0.2/32"], 25, None)
    batch = [
        f"link set {ifname} alias {ALIAS}",
        f"link set {ifname} mtu 1380",
        f"address add 10.20.0.1/16 dev {ifname}",
        f"address add fd20::1/64 dev {ifname} nodad",
        f"link set {ifname} up",
        f"route add 10.30.0.0/16 dev {ifname}",
        f"link add name {PREFIX}v0 type veth peer name {PREFIX}v1 netns {b}",
        f"link set {PREFIX}v0 alias {ALIAS}",
        f"address add 192.0.2.1/24 dev {PREFIX}v0",
        f"address add fe80::5/64 dev {PREFIX}v0 nodad",
        f"link set {PREFIX}v0 up",
        f"route add default via 192.0.2.254 dev {PREFIX}v0",
        f"link add name {PREFIX}f0 type veth peer name {PREFIX}f1",
        f"address add 198.51.100.1/24 dev {PREFIX}f0",
        f"link set {PREFIX}f0 up",
        f"route add 203.0.113.0/24 dev {PREFIX}f0",
    ]
    sh("ip", "-n", a, "-batch", "-", input="\n".join(batch) + "\n")
    sh("ip", "netns", "exec", a, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
    registry = OwnedRegistry(NODE, tmp_path)
    registry.add(a)
    registry.add(f"{PREFIX}gone")
    reader = StateReader(PyrouteNetlink(), AutoWireGuard(), ProcSysctl())
    start = time.monotonic()
    live_state = reader.read(
        NODE,
        registry.load(),
        also=[b],
        sysctls={a: ["net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "no.such.key"]},
    )
    print(f"reader: {time.monotonic() - start:.3f} s")
    st, foreign = live_state.state, live_state.foreign
    assert {b, other} <= foreign and a not in foreign
    assert {f"{a}/lo", f"{a}/{PREFIX}f0", f"{a}/{PREFIX}f1", f"{b}/{PREFIX}v1"} <= foreign
    assert f"{a}/203.0.113.0/24" in foreign
    assert f"netns.{a}" in st and f"netns.{PREFIX}gone" not in st
    w = st[f"wireguard.{a}/{ifname}"]
    assert dict(w.attrs) == {
        "listen_port": 42000 + PID % 20000,
        "mtu": 1380,
        "up": True,
        "private_key": fingerprint(priv),
        "fwmark": None,
    }
    assert dict(st[f"peer.{a}/{ifname}/{pub}"].attrs) == {
        "endpoint": "192.0.2.7:51820",
        "allowed_ips": ["10.20.0.2/32"],
        "keepalive": 25,
        "preshared_key": None,
    }
    assert dict(st[f"veth.{a}/{PREFIX}v0"].attrs) == {
        "peer_netns": b,
        "peer_ifname": f"{PREFIX}v1",
        "mtu": 1500,
    }
    ours = sorted(r.address for r in st.values() if r.kind in ("address", "route", "sysctl"))
    assert ours == sorted(
        [
            f"address.{a}/{ifname}/10.20.0.1/16",
            f"address.{a}/{ifname}/fd20::1/64",
            f"address.{a}/{PREFIX}v0/192.0.2.1/24",
            f"address.{a}/{PREFIX}v0/fe80::5/64",  # by hand: ours; the kernel's own is not
            f"route.{a}/10.30.0.0/16",
            f"route.{a}/0.0.0.0/0",
            f"sysctl.{a}/net.ipv4.ip_forward",
            f"sysctl.{a}/net.ipv4.conf.all.forwarding",
        ]
    )
    assert dict(st[f"route.{a}/0.0.0.0/0"].attrs) == {"dev": f"{PREFIX}v0", "via": "192.0.2.254"}
    assert dict(st[f"route.{a}/10.30.0.0/16"].attrs) == {"dev": ifname, "via": None}
    assert st[f"sysctl.{a}/net.ipv4.ip_forward"].attrs["value"] == "1"
    # a namespace that does not exist is simply absent; reading it is not an error
    assert PyrouteNetlink().snapshot(f"{PREFIX}gone") is None
    assert not Path("/run/netns", f"{PREFIX}gone").exists()
    with pytest.raises(StateError, match="cannot read sysctls"):
        ProcSysctl().read(f"{PREFIX}gone", ["net.ipv4.ip_forward"])


def test_canonical_private_key() -> None:
    raw = bytes(range(32))
    b64 = base64.b64encode(raw).decode()
    clamped = base64.b64decode(canonical_private_key(b64))
    assert clamped[0] == raw[0] & 248 and clamped[31] == (raw[31] & 127) | 64
    assert clamped[1:31] == raw[1:31]
    assert canonical_private_key(canonical_private_key(b64)) == canonical_private_key(b64)


class FakeGenl:
    """Stands in for pyroute2's WireGuard socket behind KernelWireGuard's factory."""

    def __init__(self, calls: list[tuple[str | None, str, dict[str, Any]]], ns: str | None) -> None:
        self.calls = calls
        self.ns = ns

    def info(self, interface: str) -> Any:
        from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

        raise NetlinkError(19, "No such device")

    def set(
        self,
        interface: str,
        listen_port: int | None = None,
        fwmark: int | None = None,
        private_key: str | None = None,
        peer: Mapping[str, Any] | None = None,
    ) -> Any:
        kw = {"listen_port": listen_port, "fwmark": fwmark, "private_key": private_key}
        self.calls.append((self.ns, interface, {**kw, "peer": peer}))

    def close(self) -> None:
        pass


def test_kernel_driver_with_fake_socket() -> None:
    calls: list[tuple[str | None, str, dict[str, Any]]] = []
    k = KernelWireGuard(lambda ns: FakeGenl(calls, ns))
    pub, psk = key(), key()
    k.set_peer("wg0", pub, "192.0.2.1:5", ["10.0.0.1/24"], None, psk, netns="nsa")
    k.remove_peer("wg0", pub, netns="nsa")
    (ns, ifname, kw), (_, _, removal) = calls
    assert (ns, ifname) == ("nsa", "wg0")
    assert kw["peer"]["allowed_ips"] == ["10.0.0.0/24"]
    assert kw["peer"]["endpoint_addr"] == "192.0.2.1" and kw["peer"]["endpoint_port"] == 5
    assert kw["peer"]["persistent_keepalive"] == 0 and kw["peer"]["replace_allowed_ips"]
    assert fp(kw["peer"]["preshared_key"]) == fp(psk)
    assert removal["peer"] == {"public_key": pub, "remove": True}
    with pytest.raises(WireGuardUnavailable, match="no such WireGuard interface"):
        k.read("wg0", netns="nsa")


def test_live_kernel_driver_errors(lab: Live) -> None:
    if kernel_unavailable_reason() is None:
        pytest.skip("the wireguard kernel module is loaded here")
    ns = lab.netns("k")
    with pytest.raises(WireGuardUnavailable, match="no wireguard kernel module"):
        KernelWireGuard().read("wg0", netns=ns)
    with pytest.raises(StateError, match="no network namespace"):
        KernelWireGuard().read("wg0", netns=f"{PREFIX}missing")
    assert not Path("/run/netns", f"{PREFIX}missing").exists()
