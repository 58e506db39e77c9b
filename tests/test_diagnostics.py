"""Every diagnostic code, each with a failing spec: code, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from hercc import codes
from tests.cliproc import hercc
from tests.conftest import errors_of, marked, write

NET = "network prod {\n  range 10.20.0.0/16\n}\n"
TWO = (
    NET
    + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\nnode b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
)

CASES: list[tuple[str, str, str]] = [
    (codes.SYNTAX, "unclosed block", "network prod {\n  range 10.20.0.0/16\n@@"),
    (codes.SYNTAX, "stray brace", NET + "@@}\n"),
    (codes.SYNTAX, "single quotes", "network prod {\n  range @@'x'\n}\n"),
    (codes.UNKNOWN, "unknown option", "network prod {\n  range 10.20.0.0/16\n  @@rnage 1\n}\n"),
    (codes.UNKNOWN, "unknown statement", NET + "@@nodes x {\n}\n"),
    (codes.MISSING, "node without network", NET + "@@node a {\n  endpoint 192.0.2.1\n}\n"),
    (
        codes.REPEATED,
        "port twice",
        "network prod {\n  range 10.20.0.0/16\n  port 1\n  @@port 2\n}\n",
    ),
    (
        codes.ARGUMENTS,
        "two endpoints",
        NET + "node a {\n  network prod\n  endpoint @@192.0.2.1 192.0.2.2\n}\n",
    ),
    (codes.BAD_CIDR, "prefix too long", "network prod {\n  range @@10.20.0.0/33\n}\n"),
    (codes.BAD_CIDR, "host bits", "network prod {\n  range @@10.20.0.1/16\n}\n"),
    (codes.BAD_ADDRESS, "bad gateway address", TWO + "gateway g {\n  address @@1.2.3\n}\n"),
    (
        codes.BAD_PORT,
        "port out of range",
        "network prod {\n  range 10.20.0.0/16\n  port @@70000\n}\n",
    ),
    (
        codes.BAD_VNI,
        "vni too large",
        TWO + "enterprise e {\n  vxlan v {\n    node a\n    vni @@16777216\n"
        "    local 192.0.2.1\n    remote 192.0.2.9\n  }\n}\n",
    ),
    (
        codes.BAD_VNI,
        "vni zero",
        TWO + "enterprise e {\n  vxlan v {\n    node a\n    vni @@0\n"
        "    local 192.0.2.1\n    remote 192.0.2.9\n  }\n}\n",
    ),
    (
        codes.BAD_VLAN,
        "vlan 4095",
        TWO + "enterprise e {\n  vlan v {\n    node a\n    parent eth1\n    id @@4095\n  }\n}\n",
    ),
    (
        codes.BAD_DURATION,
        "bad keepalive",
        "network prod {\n  range 10.20.0.0/16\n  keepalive @@5x\n}\n",
    ),
    (codes.BAD_VALUE, "bad fastpath", TWO + "dataplane {\n  fastpath @@dpdk\n}\n"),
    (
        codes.BAD_ENDPOINT,
        "unclosed v6 bracket",
        NET + "node a {\n  network prod\n  endpoint @@[2001:db8::1\n}\n",
    ),
    (
        codes.BAD_PROPOSAL,
        "IKE proposal with no DH group",
        TWO
        + "enterprise hq {\n  ipsec b {\n    node a; remote 192.0.2.9; local_ts 10.0.0.0/8\n"
        + '    remote_ts 172.16.0.0/12; auth psk secret("k")\n'
        + '    proposals "aes256-sha256-modp2048", @@"aes256-sha256"\n  }\n}\n',
    ),
    (
        codes.BAD_CERTIFICATE,
        "ipsec certificate file missing",
        TWO
        + "enterprise hq {\n  ipsec b {\n    node a; remote 192.0.2.9; local_ts 10.0.0.0/8\n"
        + '    remote_ts 172.16.0.0/12\n    auth cert @@"a.pem" ca "ca.pem" key secret("k")\n  }\n}\n',
    ),
    (codes.INCLUDE_MISSING, "include missing", TWO + 'include @@"nope.herc"\n'),
    (codes.DUPLICATE, "node twice", TWO + "node @@a {\n  network prod\n  endpoint 192.0.2.3\n}\n"),
    (codes.DUPLICATE, "workload named like a node", TWO + "workload @@a {\n  node b\n}\n"),
    (
        codes.UNDEFINED,
        "undefined network",
        NET + "node a {\n  network @@prd\n  endpoint 192.0.2.1\n}\n",
    ),
    (codes.UNDEFINED, "undefined node", TWO + "workload w {\n  node @@c\n}\n"),
    (
        codes.UNDEFINED,
        "undefined gateway",
        TWO + "workload w {\n  node a\n}\nservice s {\n  workload w\n"
        "  port 80\n  expose tcp 9000 via @@gx\n}\n",
    ),
    (codes.UNDEFINED, "undefined workload", TWO + "service s {\n  workload @@w\n  port 80\n}\n"),
    (
        codes.RANGE_OVERLAP,
        "overlapping ranges",
        NET + "network dev {\n  range @@10.20.128.0/17\n}\n",
    ),
    (
        codes.SUBNET_OUTSIDE,
        "pinned subnet outside",
        NET + "node a {\n  network prod\n  nat\n  subnet @@10.30.0.0/24\n}\n",
    ),
    (
        codes.SUBNET_OVERLAP,
        "pinned subnets overlap",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n"
        "  subnet 10.20.5.0/24\n}\nnode b {\n  network prod\n  endpoint 192.0.2.2\n  subnet @@10.20.5.0/24\n}\n",
    ),
    (
        codes.ADDRESS_OUTSIDE,
        "workload address outside",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n"
        "  subnet 10.20.9.0/24\n}\nnode b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
        "workload w {\n  node a\n  address @@10.20.8.20\n}\n",
    ),
    (
        codes.ADDRESS_REUSED,
        "workload address twice",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n"
        "  subnet 10.20.9.0/24\n}\nnode b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
        "workload v {\n  node a\n  address 10.20.9.20\n}\nworkload w {\n  node a\n  address @@10.20.9.20\n}\n",
    ),
    (
        codes.ADDRESS_REUSED,
        "workload takes the node's address",
        NET + "node a {\n  network prod\n"
        "  endpoint 192.0.2.1\n  subnet 10.20.9.0/24\n}\nnode b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
        "workload w {\n  node a\n  address @@10.20.9.1\n}\n",
    ),
    (
        codes.SUBNET_EXHAUSTED,
        "range full",
        "network prod {\n  range 10.20.0.0/24\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\nnode b {\n  network @@prod\n  endpoint 192.0.2.2\n}\n",
    ),
    (
        codes.ADDRESSES_EXHAUSTED,
        "subnet full",
        "network prod {\n  range 10.20.0.0/16\n  subnets /30\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\nnode b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
        "workload v {\n  node a\n}\nworkload @@w {\n  node a\n}\n",
    ),
    (
        codes.SUBNET_SIZE,
        "subnets wider than range",
        "network prod {\n  range 10.20.0.0/16\n  subnets @@/8\n}\n",
    ),
    (
        codes.NAT_ENDPOINT,
        "nat with endpoint",
        NET + "node a {\n  network prod\n  nat\n  endpoint @@192.0.2.1\n}\n",
    ),
    (codes.NO_ENDPOINT, "neither endpoint nor nat", NET + "node @@a {\n  network prod\n}\n"),
    (
        codes.ENDPOINT_PORT,
        "endpoint port in two networks",
        NET + "network dev {\n  range 10.30.0.0/16\n"
        "  port 51821\n}\nnode a {\n  network prod, dev\n  endpoint @@192.0.2.1:51820\n}\n",
    ),
    (
        codes.PORT_CLASH,
        "two networks one port",
        NET + "network dev {\n  range 10.30.0.0/16\n}\n"
        "node a {\n  network prod, @@dev\n  endpoint 192.0.2.1\n}\n",
    ),
    (
        codes.WRONG_NETWORK,
        "workload network not on node",
        NET + "network dev {\n  range 10.30.0.0/16\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\nworkload w {\n  node a\n  network @@dev\n}\n",
    ),
    (
        codes.EXPOSED_TWICE,
        "tcp port twice",
        TWO + "gateway g {\n  address 203.0.113.1\n}\n"
        "workload w {\n  node a\n}\nservice s {\n  workload w\n  port 80\n  expose tcp 9000 via g\n}\n"
        "service t {\n  workload w\n  port 81\n  expose tcp @@9000 via g\n}\n",
    ),
    (
        codes.EXPOSED_TWICE,
        "hostname twice",
        TWO + "gateway g {\n  address 203.0.113.1\n}\n"
        'workload w {\n  node a\n}\nservice s {\n  workload w\n  port 80\n  expose https "x.example" via g\n'
        '  expose https @@"x.example" via g\n}\n',
    ),
    (
        codes.EXPOSED_TWICE,
        "tcp port on the tunnel port",
        TWO + "gateway g {\n  address 203.0.113.1\n}\n"
        "workload w {\n  node a\n}\nservice s {\n  workload w\n  port 80\n  expose tcp @@7443 via g\n}\n",
    ),
    (
        codes.MISSING,
        "gateway without an address",
        TWO + "@@gateway g {\n  listen 443\n}\n",
    ),
    (
        codes.TUNNEL_POOL_OVERLAP,
        "network range in the tunnel pool",
        "network prod {\n  range @@100.64.0.0/10\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n",
    ),
    (
        codes.TUNNEL_POOL_OVERLAP,
        "network range6 in the tunnel pool",
        "network prod {\n  range 10.20.0.0/16\n  range6 @@fd68:6572:6375:100::/56\n}\n"
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n",
    ),
    (
        codes.NAME_OUTSIDE_ZONES,
        "exposed name in no zone",
        TWO + "gateway g {\n  address 203.0.113.1\n}\n"
        'workload w {\n  node a\n}\nservice s {\n  workload w\n  port 80\n  expose https @@"x.example.org" via g\n}\n'
        "dns example.com {\n  ttl 60\n}\n",
    ),
    (
        codes.TUNNEL_FAMILY,
        "IPv6-only workload behind an IPv4-only gateway",
        "network prod {\n  range6 fd42:20::/48\n}\nnode a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "gateway g {\n  address 203.0.113.1\n}\n"
        'workload w {\n  node a\n}\nservice s {\n  workload @@w\n  port 80\n  expose http "s.example" via g\n}\n',
    ),
    (
        codes.NOT_LISTENING,
        "http exposed on a gateway without port 80",
        TWO + "gateway g {\n  address 203.0.113.1\n  listen 443\n}\n"
        'workload w {\n  node a\n}\nservice s {\n  workload w\n  port 80\n  expose http "s.example" via @@g\n}\n',
    ),
    (
        codes.TUNNEL_NETWORKS,
        "one node exposes two networks through one gateway",
        NET + "network lab {\n  range 10.30.0.0/16\n  port 51821\n}\n"
        "node a {\n  network prod, lab\n  endpoint 192.0.2.1\n}\n"
        "gateway g {\n  address 203.0.113.1\n}\n"
        "workload w1 {\n  node a\n  network prod\n}\nworkload w2 {\n  node a\n  network lab\n}\n"
        "service s1 {\n  workload w1\n  port 80\n  expose tcp 8080 via g\n}\n"
        "service s2 {\n  workload @@w2\n  port 80\n  expose tcp 8081 via g\n}\n",
    ),
    (codes.LINK_SELF, "link to itself", TWO + "link a @@a { cost 5 }\n"),
    (
        codes.LINK_NAT_PAIR,
        "link between nat nodes",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "node m {\n  network prod\n  nat\n}\nnode n {\n  network prod\n  nat\n}\n@@link m n { cost 5 }\n",
    ),
    (
        codes.ISOLATED,
        "nat node with every path cut",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "node @@m {\n  network prod\n  nat\n}\nlink m a { unreachable }\n",
    ),
    (
        codes.NO_PATH,
        "two nat nodes and no relay",
        NET + "node p {\n  network prod\n  endpoint 192.0.2.1\n  relay off\n}\n"
        "node @@m {\n  network prod\n  nat\n}\nnode n {\n  network prod\n  nat\n}\n",
    ),
    (codes.LINK_DUPLICATE, "same link twice", TWO + "link a b { cost 5 }\n@@link b a { cost 7 }\n"),
    (
        codes.EXPOSED_TWICE,
        "listen port on the default tunnel port",
        TWO + "gateway g {\n  address 203.0.113.1\n  listen 443, @@7443\n}\n",
    ),
    (
        codes.SUBNET_SIZE,
        "range smaller than a /30",
        "network prod {\n  range @@10.20.0.0/31\n}\n",
    ),
    (
        codes.IFNAME_CLASH,
        "network names alike in 12 characters",
        "network tenant-alpha-1 {\n  range 10.20.0.0/16\n}\n"
        "network @@tenant-alpha-2 {\n  range 10.21.0.0/16\n  port 51821\n}\n"
        "node a {\n  network tenant-alpha-1, tenant-alpha-2\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network tenant-alpha-1, tenant-alpha-2\n  endpoint 192.0.2.2\n}\n",
    ),
    (
        codes.NETNS_CLASH,
        "network w-web and workload web",
        "network prod {\n  range 10.20.0.0/16\n}\n"
        "network w-web {\n  range 10.30.0.0/16\n  port 51821\n}\n"
        "node a {\n  network prod, w-web\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network prod, w-web\n  endpoint 192.0.2.2\n}\n"
        "workload @@web {\n  node a\n  network prod\n}\n",
    ),
    (
        codes.PUBKEY_REUSED,
        "one key pinned twice",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n"
        '  pubkey "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="\n}\n'
        "node b {\n  network prod\n  endpoint 192.0.2.2\n"
        '  pubkey @@"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="\n}\n',
    ),
    (
        codes.ENDPOINT_REUSED,
        "two nodes at one endpoint",
        NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
        "node b {\n  network prod\n  endpoint @@192.0.2.1:51820\n}\n",
    ),
    (
        codes.ENDPOINT_IN_OVERLAY,
        "endpoint inside the range",
        NET + "node a {\n  network prod\n  endpoint @@10.20.0.5\n}\n"
        "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n",
    ),
    (
        codes.NAT_RELAY,
        "relay on a nat node",
        TWO + "node n {\n  network prod\n  nat\n  relay @@on\n}\n",
    ),
]


@pytest.mark.parametrize(
    ("code", "text"), [(c, t) for c, _, t in CASES], ids=[n for _, n, _ in CASES]
)
def test_failing_spec_reports_code_line_and_column(tmp_path: Path, code: str, text: str) -> None:
    source, line, col = marked(text)
    found = [(d.code, d.span.line, d.span.col) for d in errors_of(tmp_path, source)]
    assert (code, line, col) in found, found


def test_every_code_has_a_failing_spec() -> None:
    # tested elsewhere: the warning below, YAML and include cycles in their own tests
    tested = {c for c, _, _ in CASES} | {
        codes.YAML_SCHEMA,
        codes.INCLUDE_CYCLE,
        codes.REPLICAS_ONE_NODE,
        codes.NO_ZONE_FILE,
    }
    assert tested == set(codes.ALL)


def test_include_cycle_names_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "b.herc", 'include "c.herc"\n')
    write(tmp_path, "c.herc", 'include "b.herc"\n')
    source, _line, _col = marked(TWO + 'include @@"b.herc"\n')
    path = write(tmp_path, "a.herc", source)
    from hercc.diagnostics import SpecError
    from hercc.pipeline import compile_spec

    with pytest.raises(SpecError) as info:
        compile_spec(path, use_lock=False)
    [diag] = info.value.diagnostics
    assert diag.code == codes.INCLUDE_CYCLE
    assert diag.message.endswith(
        "b.herc -> " + str(tmp_path / "c.herc") + " -> " + str(tmp_path / "b.herc")
    )
    assert diag.span.file == str(tmp_path / "c.herc")
    assert (diag.span.line, diag.span.col) == (1, 9)


def test_all_errors_are_reported_not_only_the_first(tmp_path: Path) -> None:
    text = (
        NET
        + "node a {\n  network prd\n  endpoint 192.0.2.1\n  bogus 1\n}\nnode b {\n  network prod\n}\n"
    )
    found = {d.code for d in errors_of(tmp_path, text)}
    assert {codes.UNDEFINED, codes.UNKNOWN, codes.NO_ENDPOINT} <= found


def test_unknown_option_suggests_the_right_one(tmp_path: Path) -> None:
    [diag] = errors_of(tmp_path, "network prod {\n  range 10.20.0.0/16\n  keepalvie 25s\n}\n")
    assert diag.hint == 'did you mean "keepalive"?'


def test_host_bits_hint_shows_the_network(tmp_path: Path) -> None:
    [diag] = errors_of(tmp_path, "network prod {\n  range 10.20.0.1/16\n}\n")
    assert diag.hint == 'did you mean "10.20.0.0/16"?'


REPLICAS = (
    TWO + "gateway g {\n  address 203.0.113.1\n}\n"
    "workload w {\n  node a\n}\nworkload v {\n  node a\n}\n"
    'service s {\n  workload w, v\n  port 80\n  expose http "s.example" via g\n}\n'
)


def test_replicas_on_one_node_warn_and_the_build_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.herc", REPLICAS)
    done = hercc("build", path, "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        f"{path}:22:3: warning[W300]: service s: its replicas v, w all run on node a\n"
        "22 |   workload w, v\n"
        "   |   ^^^^^^^^\n"
        "  = hint: losing that node loses the service: put a replica on another node\n"
    ), done.stderr
    haproxy = (tmp_path / "out" / "gateways" / "g" / "haproxy.cfg").read_text()
    assert "    server v " in haproxy and "    server w " in haproxy


def test_replicas_on_two_nodes_do_not_warn(tmp_path: Path) -> None:
    text = REPLICAS.replace("workload v {\n  node a\n}", "workload v {\n  node b\n}")
    path = write(tmp_path, "spec.herc", text)
    done = hercc("check", path, cwd=tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


def test_zone_with_its_nameserver_inside_warns_and_gets_no_file(tmp_path: Path) -> None:
    text = TWO + "dns example.com {\n  nameserver ns1.example.com\n}\n"
    path = write(tmp_path, "spec.herc", text)
    done = hercc("build", path, "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        f"{path}:13:3: warning[W301]: dns example.com: nameserver ns1.example.com lies "
        "inside the zone; the build writes no zone file for it\n"
    ), done.stderr
    assert not (tmp_path / "out" / "dns").exists()
