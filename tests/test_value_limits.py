"""Every number a spec holds is checked against the limit of the tool that uses it.

WireGuard's keepalive (1..65535 s, or off), IPFIX flow timeouts (16-bit
seconds), ports (1..65535, never with a leading zero, as `port` and in an
endpoint alike), DNS TTLs (RFC 2181: 0..2^31-1), and so on. No number, however
long, crashes hercc or turns into a float.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hercc import codes
from tests.cliproc import hercc
from tests.conftest import compile_text, errors_of, marked

NET = "network prod {\n  range 10.20.0.0/16\n}\n"
TWO = (
    NET + "node a {\n  network prod\n  endpoint 192.0.2.1\n}\n"
    "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
)


def network(option: str) -> str:
    return f"network prod {{\n  range 10.20.0.0/16\n  {option}\n}}\n"


def health(interval: str) -> str:
    service = f"service s {{\n  workload w\n  port 80\n  health tcp every {interval}\n}}\n"
    return TWO + "workload w { node a }\n" + service


def netflow(option: str) -> str:
    return TWO + f"monitor {{\n  netflow {{\n    collector 192.0.2.50\n    {option}\n  }}\n}}\n"


def enterprise(kind: str, options: str) -> str:
    return TWO + f"enterprise e {{\n  {kind} v {{\n    node a\n{options}  }}\n}}\n"


def vxlan(vni: str, port: str = "4789") -> str:
    ends = "    local 192.0.2.1\n    remote 192.0.2.9\n"
    return enterprise("vxlan", f"    vni {vni}\n{ends}    port {port}\n")


def vlan(vlan_id: str) -> str:
    return enterprise("vlan", f"    parent eth0\n    id {vlan_id}\n")


def dns(ttl: str) -> str:
    return TWO + f"dns example.com {{\n  ttl {ttl}\n}}\n"


def gateway(listen: str) -> str:
    return TWO + f"gateway g {{\n  address 203.0.113.1\n  listen 80, {listen}\n}}\n"


def link(cost: str) -> str:
    return TWO + f"link a b {{ cost {cost} }}\n"


DURATION, VALUE, PORT = codes.BAD_DURATION, codes.BAD_VALUE, codes.BAD_PORT

# (name, spec with @@ at the bad value, the spec at the limit (which passes), code)
LIMITS: list[tuple[str, str, str, str]] = [
    ("keepalive > 65535s", network("keepalive @@65536s"), network("keepalive 65535s"), DURATION),
    ("keepalive in hours", network("keepalive @@19h"), network("keepalive 18h12m15s"), DURATION),
    ("keepalive in ms", network("keepalive @@1500ms"), network("keepalive 0s"), DURATION),
    ("mtu < 1280", network("mtu @@1279"), network("mtu 1280"), VALUE),
    ("mtu > 65535", network("mtu @@65536"), network("mtu 65535"), VALUE),
    ("port 0", network("port @@0"), network("port 1"), PORT),
    ("port 65536", network("port @@65536"), network("port 65535"), PORT),
    ("ttl > 2^31-1", dns("@@2147483648"), dns("2147483647"), VALUE),
    ("ttl 0 is legal", dns("@@-1"), dns("0"), VALUE),
    ("vni > 24 bits", vxlan("@@16777216"), vxlan("16777215"), codes.BAD_VNI),
    ("vxlan port", vxlan("5", "@@65536"), vxlan("5", "65535"), PORT),
    ("vlan 4095", vlan("@@4095"), vlan("4094"), codes.BAD_VLAN),
    ("link cost", link("@@1000001"), link("1000000"), VALUE),
    ("health > daily", health("@@25h"), health("24h"), DURATION),
    ("health < 1s", health("@@999ms"), health("1s"), DURATION),
    ("flow timeout > 18h", netflow("idle_timeout @@19h"), netflow("idle_timeout 18h"), DURATION),
    ("flow timeout in ms", netflow("idle_timeout @@1500ms"), netflow("idle_timeout 1s"), DURATION),
    ("sampling", netflow("sampling @@1000001"), netflow("sampling 1000000"), VALUE),
    ("listen port", gateway("@@65536"), gateway("65535"), PORT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "good", "code"), [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS]
)
def test_each_number_stops_at_the_tools_limit(
    tmp_path: Path, bad: str, good: str, code: str
) -> None:
    source, line, col = marked(bad)
    found = [(d.code, d.span.line, d.span.col) for d in errors_of(tmp_path, source)]
    assert found == [(code, line, col)]
    compile_text(tmp_path, good)


def test_keepalive_past_wireguards_limit_is_an_error_in_both_forms(tmp_path: Path) -> None:
    (tmp_path / "spec.herc").write_text(network("keepalive 100000s"))
    (tmp_path / "spec.herc.yaml").write_text(
        "network:\n  prod:\n    range: 10.20.0.0/16\n    keepalive: 100000s\n"
    )
    proc = hercc("check", "spec.herc", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        'spec.herc:3:13: error[E115]: invalid keepalive "100000s": must be 0s..18h12m15s\n'
        "3 |   keepalive 100000s\n"
        "  |             ^^^^^^^\n"
        "  = hint: WireGuard's persistent keepalive is 1s..65535s (18h12m15s), or 0s for off\n"
        "1 error found; nothing was written.\n"
    )
    proc = hercc("check", "spec.herc.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        'spec.herc.yaml:4:16: error[E115]: invalid keepalive "100000s": must be 0s..18h12m15s\n'
    )


def test_a_huge_keepalive_never_becomes_a_float(tmp_path: Path) -> None:
    (tmp_path / "spec.herc").write_text(network("keepalive 99999999999999999999999h"))
    proc = hercc("build", "spec.herc", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 1
    assert "error[E115]: invalid keepalive" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_longest_keepalive_builds(tmp_path: Path) -> None:
    text = network("keepalive 65535s") + (
        "node a {\n  network prod\n  endpoint 192.0.2.1\n}\nnode n {\n  network prod\n  nat\n}\n"
    )
    (tmp_path / "spec.herc").write_text(text)
    proc = hercc("build", "spec.herc", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ir = json.loads((tmp_path / "out" / "ir.json").read_text())
    assert ir["networks"][0]["keepalive_ms"] == 65_535_000


# Numbers of thousands of digits, and digits that are not ASCII (YAML strings may
# hold any), in every numeric option: errors, never a crash (exit 70).
NUMERIC = (
    "network prod {\n  range 10.20.0.0/16\n  port N\n  mtu N\n  keepalive Ns\n  subnets /N\n}\n"
    "node a {\n  network prod\n  endpoint 192.0.2.1:N\n}\n"
    "node b {\n  network prod\n  endpoint 192.0.2.2\n}\n"
    "link a b { cost N }\n"
    "workload w {\n  node a\n}\n"
    "gateway g {\n  address 203.0.113.1\n  listen N\n  tunnel N\n}\n"
    "service s {\n  workload w\n  port N\n  expose tcp N via g\n  health tcp every Nms\n}\n"
    "dns example.com {\n  ttl N\n}\n"
    "enterprise e {\n  vxlan v {\n    node a\n    vni N\n    local 192.0.2.1\n"
    "    remote 192.0.2.9\n    port N\n  }\n"
    "  vlan l {\n    node a\n    parent eth0\n    id N\n  }\n}\n"
    "monitor {\n  netflow {\n    collector 192.0.2.50:N\n    active_timeout Nh\n"
    "    idle_timeout Nm\n    sampling N\n  }\n}\n"
)


def test_no_number_however_long_crashes(tmp_path: Path) -> None:
    (tmp_path / "spec.herc").write_text(NUMERIC.replace("N", "9" * 5000))
    proc = hercc("check", "--format", "json", "spec.herc", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert len(json.loads(proc.stdout)["errors"]) == NUMERIC.count("N")


# superscript two, Arabic-Indic three, fullwidth one
@pytest.mark.parametrize("digits", ["\u00b2", "\u0663", "\uff11"])
def test_digits_that_are_not_ascii_are_errors_in_yaml(tmp_path: Path, digits: str) -> None:
    (tmp_path / "spec.herc.yaml").write_text(
        "network:\n  prod:\n    range: 10.20.0.0/16\n"
        f'    port: "{digits}"\n    keepalive: "{digits}s"\n    subnets: "/{digits}"\n'
        f'node:\n  a:\n    network: prod\n    endpoint: "192.0.2.1:{digits}"\n',
        encoding="utf-8",
    )
    proc = hercc("check", "--format", "json", "spec.herc.yaml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    found = [(e["code"], e["line"]) for e in json.loads(proc.stdout)["errors"]]
    assert found == [("E112", 4), ("E115", 5), ("E110", 6), ("E112", 10)]


LEADING_ZERO_HINT = "write 51821: YAML reads 0-prefixed numbers as octal"


@pytest.mark.parametrize(
    ("name", "text", "line", "col"),
    [
        ("spec.herc", network("port 051821"), 3, 8),
        ("spec.herc", NET + "node a {\n  network prod\n  endpoint 192.0.2.1:051821\n}\n", 6, 12),
        ("spec.herc.yaml", "network:\n  prod:\n    range: 10.20.0.0/16\n    port: 051821\n", 4, 11),
        (
            "spec.herc.yaml",
            "network:\n  prod:\n    range: 10.20.0.0/16\n"
            'node:\n  a:\n    network: prod\n    endpoint: "192.0.2.1:051821"\n',
            7,
            15,
        ),
    ],
    ids=["port", "endpoint", "yaml port", "yaml endpoint"],
)
def test_a_port_with_a_leading_zero_is_refused_alike_everywhere(
    tmp_path: Path, name: str, text: str, line: int, col: int
) -> None:
    (tmp_path / name).write_text(text)
    proc = hercc("check", "--format", "json", name, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    [error] = json.loads(proc.stdout)["errors"]
    assert (error["code"], error["line"], error["col"]) == ("E112", line, col)
    assert "a leading zero is ambiguous" in error["message"]
    assert error["hint"] == LEADING_ZERO_HINT
