"""`auth cert` live: two charons authenticate each other with RSA certificates from a test CA.

Two network namespaces joined by a veth: the node beta (192.0.2.1, its
protected 10.20.0.1 on lo) and the far end (192.0.2.254, 172.16.0.1). Each
runs a charon with kernel-libipsec (tests/strongswan.py, PLATFORM.md). The
CA and both certificates are made with `openssl` (tests/pki.py). The node's
side is compiled from a spec and loaded by the `ipsec` executor over VICI
(private key, then the connection with its certificates, then initiate);
the far end is its mirror, with its own certificate from the same CA. The
protected addresses ping each other; a far end whose certificate comes from
another CA than the link's `ca` fails the apply with charon's reason. Needs root, iproute2, ping
and strongSwan's charon; skips with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hercc.plan.desired import desired_state
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.ipsec import IpsecExecutor
from hercc.resources.model import Resource, state_of
from hercc.state.ipsec import IpsecRecord, ViciSocket
from tests import pki, strongswan
from tests.conftest import compile_text

REASON = strongswan.available() or next(
    (f"{t} is not installed" for t in ("ip", "ping", "openssl") if shutil.which(t) is None), None
)
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]

SPEC = """network prod { range 10.20.0.0/16 }
node beta { network prod; endpoint 192.0.2.1 }
enterprise hq {
  ipsec branch {
    node      beta
    remote    192.0.2.254
    local_ts  10.20.0.0/24
    remote_ts 172.16.0.0/24
    auth      cert "beta.pem" ca "hq-ca.pem" key secret("beta-key")
  }
}
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def wire() -> Iterator[tuple[str, str]]:
    """Two namespaces on a veth: (node, far end), with their protected addresses on lo."""
    node, far = f"hcert{os.getpid()}-n", f"hcert{os.getpid()}-f"
    made: list[str] = []
    try:
        for ns in (node, far):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", node, "link", "add", "ul", "type", "veth", "peer", "name", "ul", "netns", far)
        for ns, underlay, protected in (
            (node, "192.0.2.1", "10.20.0.1"),
            (far, "192.0.2.254", "172.16.0.1"),
        ):
            _ip("-n", ns, "address", "add", f"{underlay}/24", "dev", "ul")
            _ip("-n", ns, "address", "add", f"{protected}/32", "dev", "lo")
            _ip("-n", ns, "link", "set", "ul", "up")
        yield node, far
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def _ping(ns: str, source: str, to: str) -> subprocess.CompletedProcess[str]:
    argv = [
        "ip",
        "netns",
        "exec",
        ns,
        "ping",
        "-n",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "-I",
        source,
    ]
    return subprocess.run([*argv, to], capture_output=True, text=True, timeout=30)


def _far_end(vici: ViciSocket, link: Resource, cert: pki.Pair, ca: pki.Pair) -> None:
    """The far end: the node's connection mirrored, its own key and certificate, the same CA."""
    vici.request("load-key", {"type": "any", "data": cert.key.read_text()})
    child = {"local_ts": ["172.16.0.0/24"], "remote_ts": ["10.20.0.0/24"]}
    conn = {
        "version": "2",
        "local_addrs": ["192.0.2.254"],
        "remote_addrs": ["192.0.2.1"],
        "proposals": ["aes256-sha256-modp2048"],
        "local": {"auth": "pubkey", "id": "192.0.2.254", "certs": [cert.cert.read_text()]},
        "remote": {"auth": "pubkey", "cacerts": [ca.cert.read_text()]},
        "children": {link.id: {**child, "esp_proposals": ["aes256-sha256-modp2048"]}},
    }
    vici.request("load-conn", {link.id: conn})


def _node_link(tmp: Path, ca: pki.Pair) -> tuple[Resource, str]:
    """The node's `ipsec` resource from the spec, and its private key."""
    beta = pki.make_cert(tmp, "beta", ca)
    model = compile_text(tmp, SPEC).ir
    return state_of(desired_state(model, "beta"))["ipsec.hq-branch"], beta.key.read_text()


def test_two_charons_authenticate_with_certificates_and_the_subnets_ping(
    tmp_path: Path, wire: tuple[str, str]
) -> None:
    node_ns, far_ns = wire
    ca = pki.make_ca(tmp_path, "hq-ca")
    link, key = _node_link(tmp_path, ca)
    far_cert = pki.make_cert(tmp_path, "far", ca, ip="192.0.2.254")
    with (
        strongswan.charon(tmp_path, far_ns, "far") as far,
        strongswan.charon(tmp_path, node_ns, "node") as node,
    ):
        _far_end(ViciSocket(far.uri.removeprefix("unix://")), link, far_cert, ca)
        vici = ViciSocket(node.uri.removeprefix("unix://"))
        IpsecExecutor(vici, IpsecRecord(tmp_path / "beta.ipsec.json"), {"beta-key": key}).create(
            link
        )
        there = _ping(node_ns, "10.20.0.1", "172.16.0.1")
        back = _ping(far_ns, "172.16.0.1", "10.20.0.1")
        (sa,) = [sa for event in vici.stream("list-sas", "list-sa") for sa in event.values()]
    assert there.returncode == 0, there.stdout + there.stderr
    assert back.returncode == 0, back.stdout + back.stderr
    assert sa["remote-id"] == "192.0.2.254" and sa["local-id"] == "O=Hercules test, CN=beta"


def test_a_far_end_certified_by_another_ca_fails_the_apply_with_charons_reason(
    tmp_path: Path, wire: tuple[str, str]
) -> None:
    node_ns, far_ns = wire
    ca, other = pki.make_ca(tmp_path, "hq-ca"), pki.make_ca(tmp_path, "other-ca")
    link, key = _node_link(tmp_path, ca)
    far_cert = pki.make_cert(tmp_path, "far", other, ip="192.0.2.254")
    with (
        strongswan.charon(tmp_path, far_ns, "far") as far,
        strongswan.charon(tmp_path, node_ns, "node") as node,
    ):
        _far_end(ViciSocket(far.uri.removeprefix("unix://")), link, far_cert, ca)  # trusts beta
        vici = ViciSocket(node.uri.removeprefix("unix://"))
        executor = IpsecExecutor(vici, IpsecRecord(tmp_path / "r.json"), {"beta-key": key})
        with pytest.raises(ExecutorError) as info:
            executor.create(link)
        sas = vici.stream("list-sas", "list-sa")
    message = str(info.value)
    assert message.startswith("ipsec.hq-branch: the tunnel did not come up: "), message
    assert message.endswith(
        """(issuer is "O=Hercules test, CN=other-ca"; """
        "no trusted RSA public key found for '192.0.2.254')"
    ), message
    assert sas == []
