"""A gateway's desired state, its HAProxy executor and its plan, without root.

The desired state comes from the gateway golden spec (tests/golden/gateways);
the executor runs against a fake HaproxySystem that records every command and
plays a master-worker HAProxy; the service plans against a fake reader.
"""

from __future__ import annotations

import base64
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hercc import ir
from hercc.pipeline import compile_spec
from hercc.plan.executor.errors import CommandFailed
from hercc.plan.executor.haproxy import HaproxyExecutor, HaproxyFailed
from hercc.plan.gateway_desired import gateway_desired
from hercc.plan.gateway_service import GatewayContext, GatewayHaproxy, plan_gateway
from hercc.plan.node_service import LiveSystem
from hercc.plan.saved import plan_from_data, plan_to_data
from hercc.resources.action import Action
from hercc.resources.fingerprints import private_key_fingerprint
from hercc.resources.gateway_naming import HOST_NETNS, GatewayNaming, HaproxyPaths, netns_arg
from hercc.resources.haproxy import config_digest, config_servers
from hercc.resources.model import Resource, State
from hercc.state.haproxy import servers_state
from tests.clitools import hercc_err
from tests.test_node_service import FakeReader

GOLDEN = Path(__file__).resolve().parent / "golden" / "gateways"


def _key(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


PUBKEYS = {
    "alpha": _key(1),
    "beta": _key(2),
    "gamma": _key(5),
    "gateway:gw-eu": _key(3),
    "gateway:gw-us": _key(4),
}
PRIVATE = _key(9)


class Keys:
    def private_key(self, node: str) -> str | None:
        return PRIVATE if node == "gateway:gw-eu" else None

    def psk(self, network: str, a: str, b: str) -> str | None:
        return None


@pytest.fixture(scope="module")
def model() -> ir.IR:
    return compile_spec(str(GOLDEN / "spec.herc"), use_lock=False, pubkeys=PUBKEYS).ir


def _desired(model: ir.IR, naming: GatewayNaming | None = None) -> State:
    return gateway_desired(model, naming or GatewayNaming.of("gw-eu"), Keys())


# --------------------------------------------------------------------------- rules


CONFIG = """backend svc-a
    mode tcp
    server web 100.127.0.3:8080 check inter 5000ms
    server v6 [fd68::2]:9000

frontend f
    bind 203.0.113.1:80
"""


def test_the_digest_masks_server_addresses_only() -> None:
    moved = CONFIG.replace("100.127.0.3:8080", "100.127.0.9:8081")
    assert config_digest(moved) == config_digest(CONFIG)
    assert config_digest(CONFIG.replace("server web", "server web3")) != config_digest(CONFIG)
    assert config_digest(CONFIG.replace("inter 5000ms", "inter 1000ms")) != config_digest(CONFIG)
    assert config_digest(CONFIG.replace(":80\n", ":81\n")) != config_digest(CONFIG)
    assert config_servers(CONFIG) == ["svc-a/v6=[fd68::2]:9000", "svc-a/web=100.127.0.3:8080"]


def test_servers_state_reads_the_runtime_api_like_the_config() -> None:
    header = (
        "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
        "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
        "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
        "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
        "srv_agent_addr srv_agent_port"
    )
    rows = [
        "3 svc-a 1 web 100.127.0.3 2 0 1 1 5 1 0 2 0 0 0 0 - 8080 - 0 0 - - 0",
        "3 svc-a 2 v6 fd68::2 2 0 1 1 5 1 0 2 0 0 0 0 - 9000 - 0 0 - - 0",
    ]
    assert servers_state("\n".join(["1", header, *rows, ""])) == config_servers(CONFIG)


def test_netns_arg_and_the_names_of_a_gateway() -> None:
    assert netns_arg(HOST_NETNS) is None and netns_arg("x") == "x"
    real = GatewayNaming.of("gw-eu")
    assert (real.netns, real.ifname) == (HOST_NETNS, "hercgw")
    assert real.haproxy.admin_socket == Path("/run/hercules/haproxy-gw-eu/admin.sock")
    lab = GatewayNaming.of("gw-eu", "p1-")
    assert lab.netns == "p1-g-gw-eu" and len(lab.ifname) <= 15
    assert GatewayNaming.of("gw-eu", "p2-").ifname != lab.ifname
    long = GatewayNaming.of("a-very-long-gateway-name", "lab-123456-")
    assert len(long.ifname) <= 15 and long.ifname.startswith("hg.")


# --------------------------------------------------------------------------- desired


def test_a_gateways_desired_state(model: ir.IR) -> None:
    d = _desired(model)
    ns = HOST_NETNS
    gw = next(g for g in model.gateways if g.name == "gw-eu")
    assert sorted(r.kind for r in d.values()) == [
        "address", "address", "haproxy", "peer", "peer", "peer", "wireguard",
    ]  # fmt: skip
    wg = d[f"wireguard.{ns}/hercgw"]
    assert wg.attrs == {
        "listen_port": gw.tunnel,
        "mtu": 1420,
        "up": True,
        "private_key": private_key_fingerprint(PRIVATE),
        "fwmark": None,
    }
    assert f"address.{ns}/hercgw/{gw.tunnel_address}/24" in d
    assert f"address.{ns}/hercgw/{gw.tunnel_address6}/64" in d
    beta = d[f"peer.{ns}/hercgw/{PUBKEYS['beta']}"]
    assert beta.label == "beta"
    assert beta.attrs == {
        "allowed_ips": ["100.127.0.5/32"],
        "keepalive": None,
        "preshared_key": None,
    }  # no endpoint: the node dials
    gamma = d[f"peer.{ns}/hercgw/{PUBKEYS['gamma']}"]  # v6app's node (r9-gwnode's E235)
    assert gamma.attrs["allowed_ips"] == ["fd68:6572:6375::2/128"]
    proxy = d[f"haproxy.{ns}/gw-eu"]
    text = proxy.content
    assert text is not None
    assert "stats socket /run/hercules/haproxy-gw-eu/admin.sock " in text
    assert proxy.attrs == {"config": config_digest(text), "servers": config_servers(text)}
    assert "svc-sixsvc-tcp/v6app=[fd68:6572:6375::2]:9000" in proxy.attrs["servers"]
    assert not any(r.kind in ("netns", "sysctl") for r in d.values())


def test_unknown_gateway_and_no_keys(model: ir.IR) -> None:
    with pytest.raises(Exception, match="gateway nope is not in the spec"):
        gateway_desired(model, GatewayNaming.of("nope"))
    d = gateway_desired(model, GatewayNaming.of("gw-us"))
    assert d["wireguard.(host)/hercgw"].attrs["private_key"] is None


# --------------------------------------------------------------------------- plan


@dataclass
class FakeProxyReader:
    proxy: Resource | None = None

    def read(self, ns: str, gateway: str, paths: HaproxyPaths) -> Resource | None:
        return self.proxy


def _context(tmp_path: Path, live: State) -> tuple[GatewayContext, FakeReader]:
    reader = FakeReader({a: r for a, r in live.items() if r.kind != "haproxy"})
    proxy = next((r for r in live.values() if r.kind == "haproxy"), None)
    ctx = GatewayContext.of(
        GatewayNaming.of("gw1"),
        Keys(),
        tmp_path,
        LiveSystem(reader, wireguard=None),  # type: ignore[arg-type]  # plans read no device
        GatewayHaproxy(FakeProxyReader(proxy), system=None),  # type: ignore[arg-type]
    )
    return ctx, reader


SPEC = """network prod {{ range 10.20.0.0/16 }}

node alpha {{
  network  prod
  endpoint 192.0.2.10
}}

node beta {{
  network  prod
  endpoint 192.0.2.11
}}

workload web {{ node {web} }}

workload db {{ node alpha }}

gateway gw1 {{ address 203.0.113.50 }}

service shop {{
  workload web
  port     {port}
  expose   tcp 18080 via gw1
}}

service reports {{
  workload db
  port     5432
  expose   tcp 15432 via gw1
}}
"""


def _spec_model(tmp_path: Path, web: str = "alpha", port: int = 8080) -> ir.IR:
    spec = tmp_path / "spec.herc"
    spec.write_text(SPEC.format(web=web, port=port))
    return compile_spec(str(spec), pubkeys={"alpha": _key(1), "beta": _key(2)}).ir


def test_the_gateway_is_read_in_its_namespace_only_and_a_new_one_is_all_creates(
    tmp_path: Path,
) -> None:
    desired = gateway_desired(_spec_model(tmp_path), GatewayNaming.of("gw1"), Keys())
    ctx, reader = _context(tmp_path, {})
    planned = plan_gateway(ctx, desired)
    assert reader.asked == [
        {
            "node": "gateway:gw1",
            "owned": set(),
            "also": [HOST_NETNS],
            "sysctls": {},
            "dataplane": [],
        }
    ]
    assert {c.action for c in planned.plan.changes} == {Action.CREATE}
    assert len(planned.plan.changes) == len(desired)
    ctx, _ = _context(tmp_path, dict(desired))
    assert plan_gateway(ctx, desired).plan.no_changes


def test_moving_a_workload_moves_its_peer_and_a_port_is_a_servers_update(tmp_path: Path) -> None:
    naming = GatewayNaming.of("gw1")
    before = gateway_desired(_spec_model(tmp_path), naming, Keys())
    ctx, _ = _context(tmp_path, dict(before))
    moved = gateway_desired(_spec_model(tmp_path, web="beta"), naming, Keys())
    changes = {c.address: c for c in plan_gateway(ctx, moved).plan.changes}
    alpha, beta = (f"peer.{HOST_NETNS}/hercgw/{_key(n)}" for n in (1, 2))
    assert changes[beta].action is Action.CREATE
    assert changes[alpha].action is Action.UPDATE  # db stays on alpha
    assert changes[alpha].changed[0][0] == "allowed_ips"
    # the workload keeps its tunnel address (SPEC.lock): HAProxy needs no change
    assert f"haproxy.{HOST_NETNS}/gw1" not in changes
    ported = gateway_desired(_spec_model(tmp_path, port=8081), naming, Keys())
    changes = {c.address: c for c in plan_gateway(ctx, ported).plan.changes}
    assert list(changes) == [f"haproxy.{HOST_NETNS}/gw1"]
    assert [name for name, _, _ in changes[f"haproxy.{HOST_NETNS}/gw1"].changed] == ["servers"]


def test_a_saved_gateway_plan_knows_its_target_and_its_texts(tmp_path: Path) -> None:
    desired = gateway_desired(_spec_model(tmp_path), GatewayNaming.of("gw1"), Keys())
    ctx, _ = _context(tmp_path, {})
    planned = plan_gateway(ctx, desired)
    data = plan_to_data(
        planned.plan, "gw1", {}, planned.desired, naming=ctx.naming,
        target="gateway",
    )  # fmt: skip
    saved = plan_from_data(data)
    assert (saved.target, saved.node) == ("gateway", "gw1")
    proxy = f"haproxy.{HOST_NETNS}/gw1"
    (created,) = [c for c in saved.plan.changes if c.address == proxy]
    assert created.after is not None and created.after.content == desired[proxy].content
    assert saved.naming["runtime_dir"] == "/run/hercules/haproxy-gw1"
    del data["target"]  # a plan saved before gateways
    assert plan_from_data(data).target == "node"


def test_cli_refuses_mixed_targets(tmp_path: Path) -> None:
    spec = tmp_path / "spec.herc"
    spec.write_text(SPEC.format(web="alpha", port=8080))
    code, err = hercc_err("plan", str(spec), "--node", "alpha", "--gateway", "gw1")
    assert code == 2 and "not allowed with argument" in err
    code, err = hercc_err("apply", str(spec), "--gateway", "gw1", "--confirm-timeout", "5")
    assert code == 2 and "--confirm-timeout is for nodes" in err
    code, err = hercc_err("apply", str(spec))
    assert code == 2 and "--node NODE or --gateway GW" in err


# --------------------------------------------------------------------------- executor


@dataclass
class FakeProcess:
    pid: int
    code: int = 0

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        return self.code


@dataclass
class FakeHaproxy:
    """Records every call; plays a master (PID 100) and its workers."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    master: int | None = None
    workers: set[int] = field(default_factory=set)
    reloads: int = 0
    refuse_check: bool = False
    fail_reloads: int = 0  # how many reloads to fail, as a master does with a bad bind
    failed: int = 0
    next_pid: int = 200

    def run(self, argv: Sequence[str]) -> str:
        self.calls.append(("run", tuple(argv)))
        if self.refuse_check and argv[:2] == ["haproxy", "-c"]:
            raise CommandFailed("`haproxy -c` failed: exit 1: [ALERT] parsing")
        return ""

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> FakeProcess:
        self.calls.append(("spawn", tuple(argv)))
        self.master = 100
        self._fork()
        return FakeProcess(99)

    def _fork(self) -> None:
        self.workers = {self.next_pid}
        self.next_pid += 1

    def kill(self, pid: int, sig: int) -> None:
        self.calls.append(("kill", (pid, sig)))
        if sig == signal.SIGUSR2 and self.fail_reloads:
            self.fail_reloads -= 1
            self.reloads += 1
            self.failed += 1
        elif sig == signal.SIGUSR2:
            self.reloads += 1
            self._fork()
        elif sig == signal.SIGTERM:
            self.master, self.workers = None, set()

    def ask(self, path: Path, command: str) -> str:
        self.calls.append(("ask", (path.name, command)))
        if command.startswith("show proc"):
            lines = ["#<PID> <type> <reloads> <uptime> <version>"]
            lines.append(f"{self.master} master {self.reloads} [failed: {self.failed}] 0d 2.6")
            lines += ["# workers", *(f"{w} worker 0 0d 2.6" for w in sorted(self.workers))]
            return "\n".join([*lines, "# programs", ""])
        return "IP changed from 'a' to 'b', port changed from '1' to '2'\n"

    def master_pid(self, paths: HaproxyPaths) -> int | None:
        return self.master


def _text(port: int = 8080, health: str = "") -> str:
    return f"backend b\n    server web 100.127.0.3:{port}{health}\n"


def _resource(text: str, *, live: bool = False) -> Resource:
    """The haproxy resource of `text`: as desired (with its text), or as read (digests only)."""
    return Resource(
        "haproxy",
        "ns1/gw1",
        {"config": config_digest(text), "servers": config_servers(text)},
        content=None if live else text,
    )


def _executor(tmp_path: Path) -> tuple[HaproxyExecutor, FakeHaproxy, HaproxyPaths]:
    fake = FakeHaproxy()
    paths = HaproxyPaths(tmp_path / "run")
    return HaproxyExecutor(fake, paths, "ns1"), fake, paths


def test_create_checks_then_starts_master_worker_in_the_namespace(tmp_path: Path) -> None:
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(_text()))
    check, spawn = fake.calls[0], next(c for c in fake.calls if c[0] == "spawn")
    assert check[1][:4] == ("haproxy", "-c", "-q", "-f")
    assert check[1][4] != str(paths.config)  # the staged file, before it is in place
    assert spawn[1] == (
        "ip", "netns", "exec", "ns1", "haproxy", "-W", "-D", "-S", str(paths.master_socket),
        "-p", str(paths.pid_file), "-f", str(paths.config),
    )  # fmt: skip
    assert paths.config.read_text() == _text()
    assert oct(paths.config.stat().st_mode & 0o777) == "0o600"


def test_a_refused_configuration_changes_nothing(tmp_path: Path) -> None:
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(_text()))
    fake.refuse_check = True
    with pytest.raises(HaproxyFailed, match="haproxy -c refused"):
        ex.update(_resource(_text()), _resource(_text(health=" check")), ["config"])
    assert paths.config.read_text() == _text()
    assert not [c for c in fake.calls if c[0] == "kill"]
    assert [p.name for p in paths.directory.iterdir()] == ["haproxy.cfg"]  # no temp file left


def test_an_address_change_goes_through_the_runtime_api(tmp_path: Path) -> None:
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(_text()))
    workers = set(fake.workers)
    fake.calls.clear()
    ex.update(_resource(_text()), _resource(_text(8081)), ["servers"])
    asked = [c[1] for c in fake.calls if c[0] == "ask"]
    assert asked == [("admin.sock", "set server b/web addr 100.127.0.3 port 8081")]
    assert fake.workers == workers and not [c for c in fake.calls if c[0] == "kill"]
    assert paths.config.read_text() == _text(8081)
    # the undo (apply's update from after to before) knows the old text
    ex.update(_resource(_text(8081)), _resource(_text()), ["servers"])
    assert paths.config.read_text() == _text()


def test_other_changes_reload_the_master_and_wait_for_a_new_worker(tmp_path: Path) -> None:
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(_text()))
    old = set(fake.workers)
    ex.update(_resource(_text()), _resource(_text(health=" check")), ["config"])
    assert ("kill", (100, signal.SIGUSR2)) in fake.calls
    assert fake.workers and fake.workers.isdisjoint(old)
    assert paths.config.read_text() == _text(health=" check")


def test_delete_stops_the_master_by_pid_and_restore_starts_it(tmp_path: Path) -> None:
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(_text()))
    # a delete gets the live resource (digests, no text): the restore uses the text it ran
    restore = ex.delete(_resource(_text(), live=True))
    assert ("kill", (100, signal.SIGTERM)) in fake.calls
    assert fake.master is None and not paths.directory.exists()
    restore()
    assert fake.master == 100 and paths.config.read_text() == _text()


def test_a_text_that_is_not_known_is_an_error(tmp_path: Path) -> None:
    ex, _fake, _paths = _executor(tmp_path)
    with pytest.raises(Exception, match="configuration text is not known"):
        ex.create(_resource(_text(), live=True))


def test_the_system_executor_hands_haproxy_over_and_keeps_the_host_namespace(
    tmp_path: Path,
) -> None:
    from hercc.plan.executor import SystemExecutor
    from hercc.plan.executor.errors import ExecutorError
    from hercc.resources.naming import Naming
    from hercc.state.registry import OwnedRegistry
    from tests.test_executor import FakeSystem, FakeWireGuard

    system, wg = FakeSystem(socket_dir=tmp_path / "sockets"), FakeWireGuard()
    ex, fake, _paths = _executor(tmp_path)
    owner = "gateway:gw1"
    executor = SystemExecutor(
        owner, Naming(), Keys(), wg, OwnedRegistry(owner, tmp_path / "state"), None,
        system=system, kernel_wireguard=True, state_dir=tmp_path / "state", fail_at="",
        kinds={"haproxy": ex},
    )  # fmt: skip
    executor.create(_resource(_text()))
    assert fake.master == 100
    wg_resource = Resource(
        "wireguard", f"{HOST_NETNS}/hercgw",
        {"listen_port": 7443, "mtu": 1420, "up": True, "private_key": None, "fwmark": None},
    )  # fmt: skip
    executor.create(wg_resource)
    runs = system.runs()
    assert runs[0] == ("ip", "link", "add", "hercgw", "type", "wireguard")
    assert all("-n" not in argv and "netns" not in argv for argv in runs)
    assert ("ip", "link", "set", "hercgw", "alias", "hercules:gateway:gw1", "mtu", "1420") in runs
    assert wg.calls[0][2]["netns"] == HOST_NETNS  # the driver maps it (netns_arg)
    bare = SystemExecutor(
        owner, Naming(), Keys(), wg, OwnedRegistry(owner, tmp_path / "state"), None,
        system=system, kernel_wireguard=True, state_dir=tmp_path / "state", fail_at="",
    )  # fmt: skip
    with pytest.raises(ExecutorError, match="unknown kind 'haproxy'"):
        bare.create(_resource(_text()))


def test_the_reader_reads_the_host_namespace_when_asked_and_calls_it_nobodys() -> None:
    from hercc.state import StateReader
    from hercc.state.netlink import Address, Link, NsSnapshot
    from hercc.state.wireguard.model import WgDevice
    from tests.test_state import FakeNetlink, FakeSysctl
    from tests.test_state import FakeWireGuard as ReadOnlyWireGuard

    alias = "hercules:gateway:gw1"
    host = NsSnapshot(
        HOST_NETNS,
        links=(
            Link(1, "eth0", None, None, 1500, True),
            Link(2, "hercgw", "tun", alias, 1420, True),
        ),
        addresses=(Address(2, "100.127.0.1/24"),),
    )

    class HostNetlink(FakeNetlink):
        def namespaces(self) -> list[str]:  # /run/netns: the named ones only
            return ["other"]

    reader = StateReader(
        HostNetlink([host]),
        ReadOnlyWireGuard({"hercgw": WgDevice(listen_port=7443)}),
        FakeSysctl({}),
    )
    live = reader.read("gateway:gw1", (), also=[HOST_NETNS], sysctls={})
    assert sorted(live.state) == [
        f"address.{HOST_NETNS}/hercgw/100.127.0.1/24", f"wireguard.{HOST_NETNS}/hercgw",
    ]  # fmt: skip
    assert live.foreign == {"other", f"{HOST_NETNS}/eth0"}  # the host is no foreign namespace
    assert reader.read("n1", ()).state == {}  # not asked for: not read


def test_a_gateway_in_a_missing_namespace_is_refused(tmp_path: Path) -> None:
    from hercc.plan.gateway_service import MissingNamespace

    naming = GatewayNaming.of("gw1", "nonexistent-prefix-")
    desired = gateway_desired(_spec_model(tmp_path), naming, Keys())
    ctx, reader = _context(tmp_path, {})
    ctx = GatewayContext.of(naming, Keys(), tmp_path, ctx.host.system, ctx.haproxy)
    with pytest.raises(MissingNamespace, match="namespace nonexistent-prefix-g-gw1 does not"):
        plan_gateway(ctx, desired)
    assert reader.asked == []


def test_a_runtime_api_failure_puts_back_what_it_changed(tmp_path: Path) -> None:
    two = "backend b\n    server web 100.127.0.3:8080\n    server web2 100.127.0.4:8080\n"
    moved = two.replace(":8080", ":8081")
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(two))
    answers = iter(["IP changed", "No such server.", "IP changed"])
    fake.ask = lambda path, command: (  # type: ignore[method-assign]
        fake.calls.append(("ask", (path.name, command))) or next(answers)
    )
    fake.calls.clear()
    with pytest.raises(HaproxyFailed, match="set server b/web: No such server"):
        ex.update(_resource(two), _resource(moved), ["servers"])
    assert [c[1][1] for c in fake.calls] == [
        "set server b/web2 addr 100.127.0.4 port 8081",
        "set server b/web addr 100.127.0.3 port 8081",
        "set server b/web2 addr 100.127.0.4 port 8080",
    ]
    assert paths.config.read_text() == two


def test_a_failed_reload_puts_the_running_configuration_back(tmp_path: Path) -> None:
    ex, fake, paths = _executor(tmp_path)
    ex.create(_resource(_text()))
    fake.fail_reloads = 1
    with pytest.raises(HaproxyFailed, match="failed to reload"):
        ex.update(_resource(_text()), _resource(_text(health=" check")), ["config"])
    assert paths.config.read_text() == _text()
    assert [c[1][1] for c in fake.calls if c[0] == "kill"] == [signal.SIGUSR2, signal.SIGUSR2]
