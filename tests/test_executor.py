"""plan/executor/ through its System boundary: a fake System records every call.

Every kind is created, updated and deleted; the tests check the commands and
the namespaces they run in, that a Restore puts back what a delete removed,
that no private or preshared key reaches an argv or a message, and that
failures are typed OperationErrors (ExecutorError and its subclasses).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from hercc.diagnostics import OperationError
from hercc.plan.apply import ApplyFailed, Step, apply_steps
from hercc.plan.executor import SystemExecutor, wireguard_go
from hercc.plan.executor.errors import (
    CommandFailed,
    ExecutorError,
    InjectedFailure,
    SecretUnavailable,
    WireGuardStartError,
)
from hercc.plan.executor.system import LinuxSystem
from hercc.resources.action import Action
from hercc.resources.canonical import canonical_private_key
from hercc.resources.fingerprints import fingerprint, private_key_fingerprint
from hercc.resources.model import Resource
from hercc.resources.naming import Naming
from hercc.state.bpf import Attachment
from hercc.state.bpf_pins import PinnedObject
from hercc.state.registry import OwnedRegistry, owner_alias
from hercc.state.wireguard.model import WgDevice, WgPeer

NODE = "alpha"
ALIAS = owner_alias(NODE)
NS = "herc-prod"
WNS = "herc-w-web"
WG = "wg-prod"
UNDERLAY = "ul"


def _key(seed: str) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


PRIVATE = _key("alpha's private key")  # as a key file holds it: not clamped
CLAMPED = canonical_private_key(PRIVATE)
OLD_PRIVATE = canonical_private_key(_key("alpha's old key"))
PSK = _key("alpha-beta psk")
PUB = _key("beta's public key")
SECRETS = (PRIVATE, CLAMPED, OLD_PRIVATE, PSK)


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeProcess:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        return self.code or 0


@dataclass
class FakeSystem:
    """Records every call; `fail` maps an argv prefix (joined by spaces) to an error."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    paths: set[Path] = field(default_factory=set)
    fail: dict[str, str] = field(default_factory=dict)
    socket_dir: Path = Path("/nonexistent")
    wireguard_go_exits: int | None = None  # the status a spawned wireguard-go exits with
    alive: set[int] = field(default_factory=set)
    tables: dict[str, str] = field(default_factory=dict)  # ns -> what `nft list table` prints
    # pid -> (namespace, argv) of what spawn started with `ip netns exec NS`
    running: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    pinned: dict[str, list[PinnedObject]] = field(default_factory=dict)  # ns -> bpf objects
    attached: dict[str, list[Attachment]] = field(default_factory=dict)  # ns -> programs
    holding: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, address) -> ifname

    def run(self, argv: Sequence[str]) -> str:
        self.calls.append(("run", tuple(argv)))
        text = " ".join(argv)
        for prefix, why in self.fail.items():
            if text.startswith(prefix):
                raise CommandFailed(f"`{text}` failed: {why}")
        if (text.startswith("tc ") and " filter del " in text) or text.endswith(" xdpgeneric off"):
            self._detached(list(argv))
        return ""

    def _detached(self, argv: list[str]) -> None:
        """A program detached by `tc filter del` (exactly that pref and handle) or `ip`."""
        ns, ifname = argv[2], argv[argv.index("dev") + 1]
        if argv[0] == "tc":
            gone = ("tc-ingress", int(argv[argv.index("pref") + 1]), argv[argv.index("handle") + 1])
        else:
            gone = ("xdp", None, None)
        self.attached[ns] = [
            a
            for a in self.attached.get(ns, [])
            if (a.ifname, (a.hook, a.pref, a.handle)) != (ifname, gone)
        ]

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> FakeProcess:
        self.calls.append(("spawn", tuple(argv)))
        proc = FakeProcess(4242, self.wireguard_go_exits)
        if self.wireguard_go_exits is None:
            self.paths.add(self.socket_dir / f"{argv[-1]}.sock")
            self.alive.add(proc.pid)
            if list(argv[:3]) == ["ip", "netns", "exec"]:
                self.running[proc.pid] = (argv[3], list(argv[4:]))
        return proc

    def address(self, action: str, ns: str, ifname: str, cidr: str) -> None:
        self.calls.append(("address", (action, ns, ifname, cidr)))

    def route(self, action: str, ns: str, dst: str, dev: str, via: str | None) -> None:
        self.calls.append(("route", (action, ns, dst, dev, via)))

    def link(self, ns: str, command: str, request: Mapping[str, Any]) -> None:
        self.calls.append(("link", (ns, command, dict(request))))
        text = f"link {command} {request['ifname']}"
        for prefix, why in self.fail.items():
            if text.startswith(prefix):
                raise CommandFailed(f"{text} in {ns}: {why}")

    def interface_of(self, ns: str, address: str) -> str | None:
        return self.holding.get((ns, address))

    def nft(self, ns: str, args: Sequence[str], ruleset: str | None = None) -> str:
        self.calls.append(("nft", (ns, tuple(args), ruleset)))
        text = " ".join(["nft", *args])
        for prefix, why in self.fail.items():
            if text.startswith(prefix):
                raise CommandFailed(f"`{text}` failed: {why}")
        if tuple(args[:2]) == ("list", "table"):
            return self.tables.get(ns, "")
        return ""

    def exists(self, path: Path) -> bool:
        return path in self.paths

    def pid_alive(self, pid: int, ifname: str) -> bool:
        return pid in self.alive

    def kill(self, pid: int, sig: int) -> None:
        self.calls.append(("kill", (pid, sig)))
        self.alive.discard(pid)
        self.running.pop(pid, None)
        self.paths = {p for p in self.paths if p.parent != self.socket_dir}

    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        where, argv = self.running.get(pid, ("", []))
        return argv if pid in self.alive and where == ns else None

    def runs(self) -> list[tuple[Any, ...]]:
        return [args for what, args in self.calls if what == "run"]

    def bpf_pinned(self, node: str, ns: str) -> list[PinnedObject]:
        return list(self.pinned.get(ns, []))

    def bpf_attachments(self, ns: str) -> list[Attachment]:
        return list(self.attached.get(ns, []))

    def bpf_load(self, hook: str, header: str, directory: PurePosixPath) -> None:
        self.calls.append(("bpf_load", (hook, directory)))
        ns, name = directory.parent.name, directory.name
        entries = ("fastpath_xdp",) if hook == "xdp" else ("fastpath_tc_eth", "fastpath_tc_l3")
        base = 100 * (1 + sum(len(v) for v in self.pinned.values()))
        programs = {e: base + i for i, e in enumerate(entries)}
        obj = PinnedObject(name, hook, name.split("-", 1)[1], programs, {"routes4": 64})
        self.pinned.setdefault(ns, []).append(obj)

    def bpf_fill(
        self, ns: str, routes: Sequence[Mapping[str, Any]], directory: PurePosixPath
    ) -> None:
        self.calls.append(("bpf_fill", (ns, len(routes), directory)))

    def bpf_attach(
        self, ns: str, ifname: str, hook: str, program: PurePosixPath, *, native: bool = False
    ) -> None:
        self.calls.append(
            ("bpf_attach", (ns, ifname, hook, program, *(["native"] if native else [])))
        )
        obj = next(o for o in self.pinned[ns] if o.name == program.parent.name)
        pid = obj.programs[program.name.removeprefix("prog_")]
        pref, handle = (49152, "0x1") if hook == "tc" else (None, None)
        hook_id = "tc-ingress" if hook == "tc" else "xdp"
        mode = ("native" if native else "generic") if hook == "xdp" else None
        self.attached.setdefault(ns, []).append(
            Attachment(ifname, hook_id, pid, pref, handle, mode)
        )

    def bpf_unpin(self, directory: PurePosixPath) -> Callable[[], None]:
        self.calls.append(("bpf_unpin", (directory,)))
        ns = directory.parent.name
        obj = next(o for o in self.pinned[ns] if o.name == directory.name)
        self.pinned[ns].remove(obj)

        def repin() -> None:
            self.calls.append(("bpf_repin", (directory,)))
            self.pinned[ns].append(obj)

        return repin


@dataclass
class FakeWireGuard:
    """A WireGuard driver over an in-memory device per interface."""

    devices: dict[str, WgDevice] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def read(self, ifname: str, *, netns: str | None = None) -> WgDevice:
        self.calls.append(("read", ifname, {"netns": netns}))
        if ifname not in self.devices:
            raise OperationError(f"no device {ifname}")
        return self.devices[ifname]

    def set_device(self, ifname: str, *, netns: str | None = None, **kw: Any) -> None:
        self.calls.append(("set_device", ifname, {"netns": netns, **kw}))
        dev = self.devices.get(ifname, WgDevice())
        key = kw.get("private_key")
        self.devices[ifname] = WgDevice(
            private_key=canonical_private_key(key) if key else dev.private_key,
            listen_port=kw.get("listen_port") or dev.listen_port,
            fwmark=dev.fwmark,
            peers=dict(dev.peers),
        )

    def set_peer(
        self,
        ifname: str,
        pubkey: str,
        endpoint: str | None,
        allowed_ips: Sequence[str],
        keepalive: int | None,
        preshared_key: str | None,
        *,
        netns: str | None = None,
    ) -> None:
        self.calls.append(
            (
                "set_peer",
                ifname,
                {
                    "netns": netns,
                    "pubkey": pubkey,
                    "endpoint": endpoint,
                    "allowed_ips": list(allowed_ips),
                    "keepalive": keepalive,
                    "psk": preshared_key,
                },
            )
        )
        dev = self.devices.setdefault(ifname, WgDevice())
        dev.peers[pubkey] = WgPeer(endpoint, list(allowed_ips), keepalive, preshared_key)

    def remove_peer(self, ifname: str, pubkey: str, *, netns: str | None = None) -> None:
        self.calls.append(("remove_peer", ifname, {"netns": netns, "pubkey": pubkey}))
        if ifname in self.devices:
            self.devices[ifname].peers.pop(pubkey, None)


class FakeKeys:
    def __init__(self, private: str | None = PRIVATE, psk: str | None = PSK) -> None:
        self.private, self.psk_value = private, psk
        self.psk_calls: list[tuple[str, str, str]] = []

    def private_key(self, node: str) -> str | None:
        return self.private if node == NODE else None

    def psk(self, network: str, a: str, b: str) -> str | None:
        self.psk_calls.append((network, a, b))
        return self.psk_value


@dataclass
class Rig:
    system: FakeSystem
    wg: FakeWireGuard
    keys: FakeKeys
    registry: OwnedRegistry
    executor: SystemExecutor
    errors: list[str] = field(default_factory=list)

    def everything_said(self) -> str:
        """Every argv, driver call but the key arguments, and error message, as text."""
        parts = [repr(self.system.calls), *self.errors]
        for what, ifname, kw in self.wg.calls:
            public = {k: v for k, v in kw.items() if k not in ("private_key", "psk")}
            parts.append(f"{what} {ifname} {public}")
        return "\n".join(parts)


def rig(
    tmp_path: Path,
    *,
    kernel: bool = True,
    keys: FakeKeys | None = None,
    fail_at: str | None = None,
) -> Rig:
    system = FakeSystem(socket_dir=tmp_path / "sockets")
    wg = FakeWireGuard()
    k = keys if keys is not None else FakeKeys()
    registry = OwnedRegistry(NODE, tmp_path / "state")
    executor = SystemExecutor(
        NODE,
        Naming(),
        k,
        wg,
        registry,
        UNDERLAY,
        system=system,
        kernel_wireguard=kernel,
        socket_dir=tmp_path / "sockets",
        state_dir=tmp_path / "state",
        fail_at=fail_at or "",
    )
    return Rig(system, wg, k, registry, executor)


# --------------------------------------------------------------------------- resources


def netns(name: str = NS) -> Resource:
    return Resource("netns", name)


def sysctl(value: str = "1") -> Resource:
    return Resource("sysctl", f"{NS}/net.ipv4.ip_forward", {"value": value}, parent=f"netns.{NS}")


def wireguard(port: int = 51820, mtu: int = 1420, key: str | None = PRIVATE) -> Resource:
    return Resource(
        "wireguard",
        f"{NS}/{WG}",
        {
            "listen_port": port,
            "mtu": mtu,
            "up": True,
            "private_key": private_key_fingerprint(key) if key is not None else None,
            "fwmark": None,
        },
        sensitive=frozenset({"private_key"}),
        parent=f"netns.{NS}",
    )


def peer(endpoint: str | None = "198.51.100.7:51820", psk: str | None = PSK) -> Resource:
    return Resource(
        "peer",
        f"{NS}/{WG}/{PUB}",
        {
            "endpoint": endpoint,
            "allowed_ips": ["10.20.1.0/24"],
            "keepalive": 25,
            "preshared_key": fingerprint(psk) if psk is not None else None,
        },
        sensitive=frozenset({"preshared_key"}),
        parent=f"wireguard.{NS}/{WG}",
        label="beta",
    )


def veth(mtu: int = 1420) -> Resource:
    return Resource(
        "veth",
        f"{NS}/hv-web",
        {"peer_netns": WNS, "peer_ifname": "eth0", "mtu": mtu},
        forces_new=frozenset({"peer_netns"}),
        parent=f"netns.{NS}",
    )


def address(cidr: str = "10.20.2.2/32") -> Resource:
    return Resource("address", f"{WNS}/eth0/{cidr}", parent=f"veth.{NS}/hv-web")


def route(via: str | None = "10.20.2.1") -> Resource:
    return Resource(
        "route", f"{WNS}/0.0.0.0/0", {"dev": "eth0", "via": via}, parent=f"veth.{NS}/hv-web"
    )


def assert_no_secret(r: Rig) -> None:
    text = r.everything_said()
    for secret in SECRETS:
        assert secret not in text


# --------------------------------------------------------------------------- netns, sysctl


def test_netns_create_delete_restore(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.executor.create(netns())
    assert r.system.runs() == [
        ("ip", "netns", "add", NS),
        ("ip", "-n", NS, "link", "set", "lo", "up"),
    ]
    assert r.registry.load() == {NS}
    r.system.calls.clear()
    r.system.paths.add(Path("/run/netns") / NS)
    restore = r.executor.delete(netns())
    assert r.system.runs() == [("ip", "netns", "del", NS)]
    assert r.registry.load() == frozenset()
    r.system.calls.clear()
    restore()
    assert r.system.runs()[0] == ("ip", "netns", "add", NS)
    assert r.registry.load() == {NS}


def test_netns_create_undone_when_lo_fails(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.system.fail[f"ip -n {NS} link set lo"] = "no such device"
    with pytest.raises(CommandFailed, match="no such device"):
        r.executor.create(netns())
    assert r.system.runs()[-1] == ("ip", "netns", "del", NS)


def test_sysctl_create_update_delete_writes_the_default(tmp_path: Path) -> None:
    r = rig(tmp_path)
    write = ("ip", "netns", "exec", NS, "sysctl", "-q", "-w")
    r.executor.create(sysctl())
    assert r.system.runs() == [(*write, "net.ipv4.ip_forward=1")]
    r.system.calls.clear()
    r.executor.update(sysctl("0"), sysctl("1"), ["value"])
    assert r.system.runs() == [(*write, "net.ipv4.ip_forward=1")]
    r.system.calls.clear()
    r.system.paths.add(Path("/run/netns") / NS)
    restore = r.executor.delete(sysctl())
    assert r.system.runs() == [(*write, "net.ipv4.ip_forward=0")]  # the default: absent
    r.system.calls.clear()
    restore()
    assert r.system.runs() == [(*write, "net.ipv4.ip_forward=1")]
    # a namespace already gone: nothing to write
    r.system.calls.clear()
    r.system.paths.clear()
    r.executor.delete(sysctl())
    assert r.system.runs() == []


# --------------------------------------------------------------------------- wireguard


def test_wireguard_kernel_create_update_delete_restore(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.executor.create(wireguard())
    assert r.system.runs() == [
        ("ip", "-n", UNDERLAY, "link", "add", WG, "type", "wireguard"),
        ("ip", "-n", UNDERLAY, "link", "set", WG, "netns", NS),
        ("ip", "-n", NS, "link", "set", WG, "alias", ALIAS, "mtu", "1420"),
        ("ip", "-n", NS, "link", "set", WG, "up"),
    ]
    (what, ifname, kw) = r.wg.calls[-1]
    assert (what, ifname, kw["netns"], kw["listen_port"]) == ("set_device", WG, NS, 51820)
    assert kw["private_key"] in (PRIVATE, CLAMPED)  # the device clamps it either way
    assert_no_secret(r)

    # update: MTU by ip, port through the driver, in the interface's namespace
    r.system.calls.clear()
    r.wg.calls.clear()
    r.executor.update(wireguard(), wireguard(port=51821, mtu=1380), ["listen_port", "mtu"])
    assert r.system.runs() == [("ip", "-n", NS, "link", "set", WG, "mtu", "1380")]
    assert r.wg.calls == [("set_device", WG, {"netns": NS, "listen_port": 51821})]

    # a new key: the old one is read first (for the undo), then replaced
    r.wg.devices[WG] = WgDevice(private_key=OLD_PRIVATE, listen_port=51821)
    r.wg.calls.clear()
    before = wireguard(key=OLD_PRIVATE)
    r.executor.update(before, wireguard(), ["private_key"])
    assert [c[0] for c in r.wg.calls] == ["read", "set_device"]
    assert r.wg.calls[-1][2]["private_key"] == CLAMPED
    r.executor.update(wireguard(), before, ["private_key"])  # the undo: the old key, from memory
    assert r.wg.calls[-1][2]["private_key"] == OLD_PRIVATE

    # delete reads the device (key and port kept in memory), then the restore needs no keys
    r.wg.devices[WG] = WgDevice(private_key=CLAMPED, listen_port=51820)
    r.system.calls.clear()
    restore = r.executor.delete(wireguard())
    assert r.system.runs() == [("ip", "-n", NS, "link", "del", WG)]
    r.keys.private = None
    r.system.calls.clear()
    r.wg.calls.clear()
    restore()
    assert r.system.runs()[0] == ("ip", "-n", UNDERLAY, "link", "add", WG, "type", "wireguard")
    assert r.wg.calls[-1][2]["private_key"] == CLAMPED
    assert_no_secret(r)


def test_wireguard_go_started_in_the_underlay_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wireguard_go, "EXIT_TIMEOUT", 0.05)  # this fake never exits alone
    r = rig(tmp_path, kernel=False)
    r.executor.create(wireguard())
    spawned = [args for what, args in r.system.calls if what == "spawn"]
    assert spawned == [("ip", "netns", "exec", UNDERLAY, "wireguard-go", "-f", WG)]
    assert r.system.runs()[0] == ("ip", "-n", UNDERLAY, "link", "set", WG, "netns", NS)
    pids = tmp_path / "state" / f"{NODE}.wireguard-go.json"
    assert '"wg-prod": 4242' in pids.read_text()
    r.wg.devices[WG] = WgDevice(private_key=CLAMPED, listen_port=51820)
    r.system.calls.clear()
    restore = r.executor.delete(wireguard())
    assert r.system.runs()[0] == ("ip", "-n", NS, "link", "del", WG)
    assert ("kill", (4242, 15)) in r.system.calls  # SIGTERM to the process it started
    assert '"wg-prod"' not in pids.read_text()
    restore()
    assert [args for what, args in r.system.calls if what == "spawn"][-1][-1] == WG
    assert_no_secret(r)


def test_wireguard_go_that_exits_is_a_typed_error(tmp_path: Path) -> None:
    r = rig(tmp_path, kernel=False)
    r.system.wireguard_go_exits = 1
    with pytest.raises(WireGuardStartError, match="exited with status 1") as info:
        r.executor.create(wireguard())
    assert isinstance(info.value, OperationError)
    r.errors.append(str(info.value))
    assert_no_secret(r)


def test_wireguard_failure_half_way_removes_the_interface(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.system.fail[f"ip -n {NS} link set {WG} alias"] = "RTNETLINK answers: Invalid argument"
    with pytest.raises(CommandFailed) as info:
        r.executor.create(wireguard())
    assert ("ip", "-n", NS, "link", "del", WG) in r.system.runs()
    r.errors.append(str(info.value))
    assert_no_secret(r)


def test_a_private_key_nobody_has_is_secret_unavailable(tmp_path: Path) -> None:
    r = rig(tmp_path, keys=FakeKeys(private=None))
    with pytest.raises(SecretUnavailable, match="pass --keys DIR") as info:
        r.executor.create(wireguard())
    assert r.system.runs() == []  # refused before anything changed
    r.errors.append(str(info.value))
    assert_no_secret(r)


# --------------------------------------------------------------------------- peer


def test_peer_create_update_delete_restore(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.executor.create(peer())
    assert r.keys.psk_calls == [("prod", NODE, "beta")]  # found by the peer's label
    (what, ifname, kw) = r.wg.calls[-1]
    assert (what, ifname, kw["netns"], kw["pubkey"]) == ("set_peer", WG, NS, PUB)
    assert (kw["endpoint"], kw["allowed_ips"], kw["keepalive"]) == (
        "198.51.100.7:51820",
        ["10.20.1.0/24"],
        25,
    )
    assert kw["psk"] == PSK

    # an endpoint that goes away: remove and add again (UAPI cannot clear one)
    r.wg.calls.clear()
    r.executor.update(peer(), peer(endpoint=None), ["endpoint"])
    assert [c[0] for c in r.wg.calls] == ["remove_peer", "set_peer"]
    assert r.wg.calls[-1][2]["endpoint"] is None

    # delete, then restore without any keys: the PSK comes from memory
    r.wg.calls.clear()
    live = Resource("peer", peer().id, peer().attrs, peer().sensitive, parent=peer().parent)
    restore = r.executor.delete(live)  # the live side has no label
    assert r.wg.calls == [("remove_peer", WG, {"netns": NS, "pubkey": PUB})]
    r.keys.psk_value = None
    restore()
    assert r.wg.calls[-1][0] == "set_peer" and r.wg.calls[-1][2]["psk"] == PSK
    assert_no_secret(r)


def test_peer_update_undo_finds_the_old_psk(tmp_path: Path) -> None:
    """A PSK change reads the old one first, so the undo (live resource: no label) works."""
    r = rig(tmp_path)
    old_psk = _key("an old psk")
    r.wg.devices[WG] = WgDevice(
        private_key=CLAMPED, peers={PUB: WgPeer("198.51.100.7:51820", [], 25, old_psk)}
    )
    before = Resource("peer", peer().id, peer(psk=old_psk).attrs, peer().sensitive)
    r.executor.update(before, peer(), ["preshared_key"])
    assert r.wg.calls[-1][2]["psk"] == PSK
    r.keys.psk_value = None
    r.executor.update(peer(), before, ["preshared_key"])  # what the undo log does
    assert r.wg.calls[-1][2]["psk"] == old_psk
    assert_no_secret(r)


def test_peer_without_a_public_key_is_refused(tmp_path: Path) -> None:
    r = rig(tmp_path)
    unknown = Resource("peer", f"{NS}/{WG}/unknown-key:beta", {}, label="beta")
    with pytest.raises(SecretUnavailable, match="peer beta has no public key"):
        r.executor.create(unknown)
    r.executor.delete(unknown)  # nothing to remove on the device
    assert not any(c[0] == "remove_peer" for c in r.wg.calls)


def test_missing_psk_is_secret_unavailable(tmp_path: Path) -> None:
    r = rig(tmp_path, keys=FakeKeys(psk=None))
    with pytest.raises(SecretUnavailable, match="preshared key of peer beta") as info:
        r.executor.create(peer())
    r.errors.append(str(info.value))
    assert_no_secret(r)


# --------------------------------------------------------------------------- veth, address, route


def test_veth_create_update_delete_restore(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.executor.create(veth())
    assert r.system.runs() == [
        tuple(f"ip -n {NS} link add hv-web mtu 1420 type veth".split())
        + tuple(f"peer name eth0 mtu 1420 netns {WNS}".split()),
        ("ip", "-n", NS, "link", "set", "hv-web", "alias", ALIAS, "up"),
        ("ip", "-n", WNS, "link", "set", "eth0", "alias", ALIAS, "up"),
        ("ip", "-n", WNS, "link", "set", "lo", "up"),
    ]
    r.system.calls.clear()
    r.executor.update(veth(), veth(mtu=1380), ["mtu"])
    assert r.system.runs() == [
        ("ip", "-n", NS, "link", "set", "hv-web", "mtu", "1380"),
        ("ip", "-n", WNS, "link", "set", "eth0", "mtu", "1380"),
    ]
    r.system.calls.clear()
    restore = r.executor.delete(veth())
    assert r.system.runs() == [("ip", "-n", NS, "link", "del", "hv-web")]
    r.system.calls.clear()
    restore()
    assert r.system.runs()[0][:6] == ("ip", "-n", NS, "link", "add", "hv-web")


def test_veth_delete_of_a_gone_pair_is_fine_and_a_real_failure_is_typed(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.system.fail = {f"ip -n {NS} link del": "Cannot find device", f"ip -n {NS} link show": "x"}
    r.executor.delete(veth())  # gone already (its namespace went first)
    r.system.fail = {f"ip -n {NS} link del": "Operation not permitted"}
    with pytest.raises(CommandFailed, match="not permitted"):
        r.executor.delete(veth())
    r.system.fail = {f"ip -n {WNS} link set eth0": "no such namespace"}
    with pytest.raises(CommandFailed):
        r.executor.create(veth())
    assert r.system.runs()[-1] == ("ip", "-n", NS, "link", "del", "hv-web")  # undone


def test_address_and_route_create_update_delete_restore(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.executor.create(address())
    restore = r.executor.delete(address())
    restore()
    assert r.system.calls == [
        ("address", ("add", WNS, "eth0", "10.20.2.2/32")),
        ("address", ("del", WNS, "eth0", "10.20.2.2/32")),
        ("address", ("add", WNS, "eth0", "10.20.2.2/32")),
    ]
    r.system.calls.clear()
    r.executor.create(route())
    r.executor.update(route(), route(via="10.20.2.9"), ["via"])
    restore = r.executor.delete(route(via="10.20.2.9"))
    restore()
    assert r.system.calls == [
        ("route", ("add", WNS, "0.0.0.0/0", "eth0", "10.20.2.1")),
        ("route", ("del", WNS, "0.0.0.0/0", "eth0", "10.20.2.1")),
        ("route", ("add", WNS, "0.0.0.0/0", "eth0", "10.20.2.9")),
        ("route", ("del", WNS, "0.0.0.0/0", "eth0", "10.20.2.9")),
        ("route", ("add", WNS, "0.0.0.0/0", "eth0", "10.20.2.9")),
    ]


# --------------------------------------------------------------------------- errors


def test_errors_are_typed_operation_errors(tmp_path: Path) -> None:
    r = rig(tmp_path)
    with pytest.raises(ExecutorError, match="unknown kind 'bond'"):
        r.executor.create(Resource("bond", f"{NS}/bond0"))
    with pytest.raises(ExecutorError, match="malformed resource id"):
        r.executor.create(Resource("address", f"{NS}/only-two"))
    with pytest.raises(ExecutorError, match="cannot change in place"):
        r.executor.update(netns(), netns("herc-other"), ["id"])
    with pytest.raises(ExecutorError, match="needs peer_netns"):
        r.executor.create(Resource("veth", f"{NS}/hv-x", {"mtu": 1420}))
    assert issubclass(ExecutorError, OperationError)


def test_injected_failure_fires_once_and_apply_rolls_back(tmp_path: Path) -> None:
    r = rig(tmp_path, fail_at=f"address.{WNS}/eth0/10.20.2.2/32")
    r.system.paths.add(Path("/run/netns") / NS)
    steps = [
        Step(Action.CREATE, "netns." + NS, None, netns()),
        Step(Action.CREATE, sysctl().address, None, sysctl()),
        Step(Action.CREATE, veth().address, None, veth()),
        Step(Action.CREATE, address().address, None, address()),
    ]
    with pytest.raises(ApplyFailed, match="injected failure") as info:
        apply_steps(steps, r.executor)
    assert isinstance(info.value.cause, InjectedFailure)
    assert info.value.rollback_errors == []
    runs = r.system.runs()
    # undone newest first: the veth, the sysctl (back to its default), the namespace
    assert runs[-3:] == [
        ("ip", "-n", NS, "link", "del", "hv-web"),
        ("ip", "netns", "exec", NS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"),
        ("ip", "netns", "del", NS),
    ]
    assert r.registry.load() == frozenset()
    apply_steps(steps[3:], r.executor)  # once only: the next try goes through


def test_linux_system_failures_are_command_failed() -> None:
    system = LinuxSystem(timeout=5)
    assert system.run(["true"]) == ""
    with pytest.raises(CommandFailed, match="failed: exit 1"):
        system.run(["false"])
    with pytest.raises(CommandFailed, match="cannot run"):
        system.run(["/nonexistent/hercc-no-such-tool"])
    with pytest.raises(CommandFailed, match="timed out"):
        LinuxSystem(timeout=0.2).run(["sleep", "5"])
