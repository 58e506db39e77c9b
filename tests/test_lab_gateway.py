"""The lab's public side, without a live lab: topology, DNS zones, certificates, servers' plan.

The gateways' and the internet namespace's layout (hercc.lab.public), the
zone text named loads (hercc.lab.dns, checked with the real named-checkconf
where it runs), the test certificates (hercc.lab.certs), which workload
serves what (hercc.lab.workload_servers), and the server program itself
(hercc.lab.servers) on loopback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from hercc import ir
from hercc.cli.views.lab import check_json, render_public
from hercc.diagnostics import LabError
from hercc.lab.certs import make_certificates
from hercc.lab.dns import named_conf, zone_text
from hercc.lab.keys import GeneratedKeys, gateway_owner, gateway_public_keys, with_keys
from hercc.lab.persistent.probes import PublicProbe
from hercc.lab.persistent.statefile import LabState, exec_targets
from hercc.lab.persistent.targets import NoSuchTarget, target_namespace
from hercc.lab.public import INTERNET_ADDRESS, INTERNET_ADDRESS6, clashes
from hercc.lab.public_paths import public_paths
from hercc.lab.servers import parse
from hercc.lab.spec import compile_for_lab
from hercc.lab.topology import topology_of
from hercc.lab.workload_servers import served, server_argv
from hercc.pipeline import compile_spec
from tests.conftest import EXAMPLES

SPEC = Path(__file__).parent / "lab_gateways.herc"


def model_of(text: str, tmp: Path) -> ir.IR:
    path = tmp / "spec.herc"
    path.write_text(text)
    return compile_spec(str(path), use_lock=False).ir


def gateways_ir() -> ir.IR:
    return compile_spec(str(SPEC), use_lock=False).ir


def test_gateways_and_internet_are_on_the_bridge() -> None:
    t = topology_of(gateways_ir(), "hx1")
    assert [(g.gateway, g.ns, g.address, g.address6, g.port) for g in t.gateways] == [
        ("gw1", "hx1-g-gw1", "203.0.113.1/32", "2001:db8:1::1/128", "g0"),
        ("gw2", "hx1-g-gw2", "203.0.113.2/32", None, "g1"),
    ]
    assert t.internet is not None
    assert (t.internet.ns, t.internet.address, t.internet.address6) == (
        "hx1-i",
        INTERNET_ADDRESS,
        INTERNET_ADDRESS6,
    )
    names = t.namespaces()
    assert names.index("hx1-g-gw1") < names.index("hx1-i") < names.index(t.members[0].ns)
    wg = [m.wg_if for m in t.members] + [g.wg_if for g in t.gateways]
    assert len(set(wg)) == len(wg) and all(len(n) <= 15 for n in wg)


def test_a_gateway_named_like_a_node_gets_its_own_namespace(tmp_path: Path) -> None:
    text = SPEC.read_text().replace("gateway gw2 ", "gateway a ").replace("gw2", "a")
    t = topology_of(model_of(text, tmp_path), "hx2")
    assert {"hx2-n-a", "hx2-g-a"} <= set(t.namespaces())


def test_the_internet_address_must_be_free(tmp_path: Path) -> None:
    text = SPEC.read_text().replace("range     10.50.0.0/16", "range     198.19.0.0/16")
    with pytest.raises(LabError, match=r"198\.19\.255\.254 is inside the spec's 198\.19\.0\.0/16"):
        topology_of(model_of(text, tmp_path), "hx3")
    text = SPEC.read_text().replace("2001:db8:1::1", "2001:2::fe")
    with pytest.raises(LabError, match=r"2001:2::fe is inside the spec's 2001:2::fe/128"):
        topology_of(model_of(text, tmp_path), "hx3")


def test_clashes_sees_endpoints_and_ranges_but_not_default_routes() -> None:
    model = gateways_ir()
    assert clashes(model, "192.0.2.21") == ["192.0.2.21/32"]  # node a's endpoint
    assert clashes(model, "10.50.200.1") == ["10.50.0.0/16"]
    assert clashes(model, "8.8.8.8") == []


def test_a_gateway_cannot_share_a_node_endpoint(tmp_path: Path) -> None:
    text = SPEC.read_text().replace("address  203.0.113.1", "address  192.0.2.22")
    with pytest.raises(LabError, match=r"gateway gw1 and node b share 192\.0\.2\.22"):
        topology_of(model_of(text, tmp_path), "hx4")


def test_zone_text_adds_the_glue_of_an_in_zone_name_server() -> None:
    model = gateways_ir()
    t = topology_of(model, "hx5")
    assert t.internet is not None
    text = zone_text(model.dns[0], t.internet)
    assert "shop.example.com. 60 IN A 203.0.113.1\n" in text
    assert "shop.example.com. 60 IN A 203.0.113.2\n" in text
    assert "shop.example.com. 60 IN AAAA 2001:db8:1::1\n" in text
    assert text.endswith(
        f"ns1.example.com. 60 IN A {INTERNET_ADDRESS}\n"
        f"ns1.example.com. 60 IN AAAA {INTERNET_ADDRESS6}\n"
    )


@pytest.mark.skipif(shutil.which("named-checkconf") is None, reason="needs bind9 (named-checkconf)")
def test_named_accepts_the_configuration_and_zones(tmp_path: Path) -> None:
    model = compile_spec(str(EXAMPLES / "reference.herc"), use_lock=False).ir
    internet = topology_of(gateways_ir(), "hx6").internet
    assert internet is not None
    for zone in model.dns:
        (tmp_path / f"{zone.zone}.zone").write_text(zone_text(zone, internet))
    conf = tmp_path / "named.conf"
    conf.write_text(named_conf(tmp_path, internet, [z.zone for z in model.dns]))
    done = subprocess.run(
        ["named-checkconf", "-z", str(conf)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "zone example.com/IN: loaded serial" in done.stdout
    # without the glue, named refuses the build's zone: the lab's addition is needed
    bare = zone_text(model.dns[0], internet).split("ns1.example.com. 60 IN A")[0]
    (tmp_path / "example.com.zone").write_text(bare)
    done = subprocess.run(["named-checkconf", "-z", str(conf)], capture_output=True, check=False)
    assert done.returncode != 0


def test_served_lists_each_replica_with_its_protocols() -> None:
    got = {s.workload: (s.ports, s.https_hosts) for s in served(gateways_ir())}
    assert got == {
        "db": (((5432, ("tcp",)),), ()),
        "web1": (((8080, ("http", "https")),), ("shop.example.com",)),
        "web2": (((8080, ("http", "https")),), ("shop.example.com",)),
    }
    web1 = next(s for s in served(gateways_ir()) if s.workload == "web1")
    assert server_argv(web1, None)[-2:] == ["web1", "8080=http,https"]


def test_certificates_name_the_workload_and_its_hosts(tmp_path: Path) -> None:
    ca, certs = make_certificates(tmp_path, "lab1", [("web1", ["shop.example.com", "b.example"])])
    cert = x509.load_pem_x509_certificate(certs["web1"].cert.read_bytes())
    authority = x509.load_pem_x509_certificate(ca.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web1"
    assert cert.issuer == authority.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["b.example", "shop.example.com"]
    assert certs["web1"].key.stat().st_mode & 0o777 == 0o600
    context = ssl.create_default_context(cafile=str(ca))  # the chain verifies
    context.load_cert_chain(certs["web1"].cert, certs["web1"].key)


def test_parse_refuses_https_without_a_certificate() -> None:
    with pytest.raises(ValueError, match="needs --tls"):
        parse(["web", "8080=https"])
    name, context, listeners = parse(["db", "5432=tcp", "8080=http"])
    assert (name, context) == ("db", None)
    assert [(x.port, sorted(x.protocols)) for x in listeners] == [(5432, ["tcp"]), (8080, ["http"])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """The server program on loopback: (web port, tcp port, CA file)."""
    ca, certs = make_certificates(tmp_path, "t", [("web1", ["shop.example.com"])])
    web, tcp = _free_port(), _free_port()
    argv = [sys.executable, "-m", "hercc.lab.servers", "web1"]
    argv += ["--tls", str(certs["web1"].cert), str(certs["web1"].key)]
    proc = subprocess.Popen([*argv, f"{web}=http,https", f"{tcp}=tcp"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", tcp), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        yield web, tcp, ca
    finally:
        proc.terminate()
        proc.wait(5)


def _http(sock: socket.socket, request: bytes) -> bytes:
    """One request on `sock`, and its whole answer (head and Content-Length bytes of body)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_server_speaks_http_https_and_tcp(server: tuple[int, int, Path]) -> None:
    web, tcp, ca = server
    get = b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"
    with socket.create_connection(("127.0.0.1", web), timeout=5) as plain:
        answer = _http(plain, get)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(
            b"\r\n\r\nweb1\nhost shop.example.com\n"
        )
        assert _http(plain, b"GET /healthz HTTP/1.1\r\n\r\n").endswith(b"ok\n")  # keep-alive
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", web), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="shop.example.com") as tls,
    ):
        assert _http(tls, get).endswith(b"web1\nhost shop.example.com\n")
        cn = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
        assert cn == "web1"
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as conn:
        assert conn.recv(100) == f"web1 {tcp}\n".encode()
        conn.sendall(b"echo me")
        assert conn.recv(100) == b"echo me"


def test_server_module_runs_standalone() -> None:
    with pytest.raises(ValueError, match="usage"):
        asyncio.run(__import__("hercc.lab.servers", fromlist=["main"]).main([]))


def test_exec_names_gateways_and_the_internet(tmp_path: Path) -> None:
    text = SPEC.read_text().replace("gateway gw2 ", "gateway a ").replace("gw2", "a")
    targets = exec_targets(topology_of(model_of(text, tmp_path), "hx7"))
    assert targets["internet"] == "hx7-i"
    assert targets["gw1"] == targets["gateway:gw1"] == "hx7-g-gw1"
    assert (targets["node:a"], targets["gateway:a"]) == ("hx7-n-a", "hx7-g-a")
    assert "a" not in targets  # a node and a gateway: the kind must be said
    state = LabState("l", "hx7", "", "", "", "", targets=targets)
    with pytest.raises(NoSuchTarget, match="'a' is a node and a gateway: say node:a or gateway:a"):
        target_namespace(state, "a")


def test_gateways_have_lab_keys_of_their_own(tmp_path: Path) -> None:
    compiled, keys = compile_for_lab(str(SPEC), GeneratedKeys(tmp_path))
    model = compiled.ir
    gw1 = model.gateways[0]
    assert gw1.pubkey == keys.public_key(gateway_owner("gw1"))
    assert keys.private_key_file(gateway_owner("gw1")) == tmp_path / "gateways" / "gw1.key"
    assert (tmp_path / "gateways" / "gw1.key").stat().st_mode & 0o777 == 0o600
    assert gateway_public_keys(tmp_path, ["gw1", "nope"]) == {"gateway:gw1": gw1.pubkey}
    nodes = {n.name: n.pubkey for n in model.nodes}
    assert all(t.pubkey == nodes[t.node] for t in gw1.tunnels)
    # with_keys puts another source's keys everywhere, gateways and tunnels too
    other = with_keys(model, GeneratedKeys(tmp_path / "other"))
    assert other.gateways[0].pubkey not in (None, gw1.pubkey)
    assert {t.pubkey for t in other.gateways[0].tunnels} == {n.pubkey for n in other.nodes}


def test_public_paths_cover_every_gateway_address_and_name() -> None:
    paths = public_paths(gateways_ir())
    got = sorted((p.kind, p.name, p.port, p.gateway, p.address) for p in paths)
    addresses = [("gw1", "203.0.113.1"), ("gw1", "2001:db8:1::1"), ("gw2", "203.0.113.2")]
    want = [
        (k, "shop.example.com", port, g, a)
        for k, port in (("http", 80), ("https", 443))
        for g, a in addresses
    ]
    want += [("tcp", "15432", 15432, g, a) for g, a in addresses]
    want += [("dns", "shop.example.com", 53, "", "")]
    assert got == sorted(want)
    assert {p.answers for p in paths if p.kind in ("http", "https")} == {("web1", "web2")}
    dns = next(p for p in paths if p.kind == "dns")
    assert dns.answers == ("2001:db8:1::1", "203.0.113.1", "203.0.113.2")


def test_the_public_paths_view() -> None:
    paths = public_paths(gateways_ir())
    https = next(p for p in paths if p.kind == "https" and ":" in p.address)
    dns = next(p for p in paths if p.kind == "dns")
    probes = [PublicProbe(https, True, "web2"), PublicProbe(dns, False, "203.0.113.1")]
    text = render_public(probes)
    assert text == (
        "public paths, from the internet namespace:\n"
        "  ok   https  shop.example.com via gw1 ([2001:db8:1::1]:443) -> web2\n"
        "  FAIL dns    shop.example.com: one record per gateway -> 203.0.113.1\n"
        "1/2 public paths answered\n"
    )
    data = json.loads(check_json("l", [], probes))
    assert data["ok"] is False
    assert data["public"][0] == {
        "kind": "https",
        "name": "shop.example.com",
        "port": 443,
        "gateway": "gw1",
        "address": "2001:db8:1::1",
        "answer": "web2",
        "ok": True,
    }
    assert render_public([]) == ""


def test_later_certificates_come_from_the_same_ca(tmp_path: Path) -> None:
    ca, _ = make_certificates(tmp_path, "l", [("web1", ["a.example"])])
    first = ca.read_bytes()
    again, certs = make_certificates(tmp_path, "l", [("web2", ["b.example"])])
    assert again.read_bytes() == first and (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    ssl.create_default_context(cafile=str(ca)).load_cert_chain(
        certs["web2"].cert, certs["web2"].key
    )
