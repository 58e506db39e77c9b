"""`auth cert`: certificates checked while compiling, built for swanctl, loaded over VICI.

The certificates are made with `openssl` (tests/pki.py). A throwaway charon
(tests/strongswan.py) loads the build the way docs/outputs.md says: the key
from nodes/<node>/secrets/ with --load-creds, then the connections; its output
is read line by line. The executor and the reader run against the fake
charon of tests/test_plan_ipsec.py. Two charons authenticating each other
live: tests/test_ipsec_cert_live.py.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hercc import codes, ipsec_certs, ir
from hercc.cli import main as cli
from hercc.cli.views.plan import render_plan
from hercc.diagnostics import LabError, OperationError
from hercc.fmt import format_source
from hercc.lab.enterprise_ipsec import sites
from hercc.lab.topology import topology_of
from hercc.parser import parse_text
from hercc.plan.desired import desired_state
from hercc.plan.diff import diff
from hercc.plan.executor.errors import SecretUnavailable
from hercc.plan.executor.ipsec import IpsecExecutor
from hercc.plan.ipsec_setup import IpsecSetup
from hercc.resources.ipsec import IpsecContent, cert_fingerprint, key_id
from hercc.resources.model import state_of
from hercc.state.ipsec import IpsecQuery, IpsecRecord, read_ipsec
from tests import pki, strongswan
from tests.conftest import compile_text, errors_of
from tests.test_plan_ipsec import FakeVici

LINK = """network prod {{ range 10.20.0.0/16 }}
node beta {{ network prod; endpoint 198.51.100.7 }}
enterprise hq {{
  ipsec branch {{
    node      beta
    remote    192.0.2.254
    local_ts  10.20.0.0/16
    remote_ts 172.16.0.0/12
    auth      {auth}
  }}
}}
"""
AUTH = 'cert "certs/beta.pem" ca "certs/hq-ca.pem" key secret("beta-key")'
YAML = """network: {prod: {range: 10.20.0.0/16}}
node: {beta: {network: prod, endpoint: 198.51.100.7}}
enterprise:
  hq:
    ipsec:
      branch:
        node: beta
        remote: 192.0.2.254
        local_ts: 10.20.0.0/16
        remote_ts: 172.16.0.0/12
        auth: {cert: certs/beta.pem, ca: certs/hq-ca.pem, key: beta-key%s}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec directory with certs/: the node's CA and certificate, the remote's CA,
    an ECDSA certificate, and a file that is not a certificate."""
    root = tmp_path_factory.mktemp("pki")
    d = root / "certs"
    d.mkdir()
    own_ca = pki.make_ca(d, "own-ca")
    pki.make_cert(d, "beta", own_ca)
    pki.make_cert(d, "ecdsa", own_ca, key=pki.ECDSA)
    pki.make_ca(d, "hq-ca")
    (d / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    return root


def _spec(root: Path, auth: str = AUTH, name: str = "spec.herc") -> Path:
    path = root / name
    path.write_text(LINK.format(auth=auth))
    return path


def test_the_ir_holds_the_certificates_and_only_the_key_name(certs: Path) -> None:
    model = compile_text(certs, LINK.format(auth=AUTH)).ir
    (link,) = model.enterprise[0].ipsec
    assert link.auth == "pubkey" and link.psk is None and link.cert is not None
    assert link.cert.cert.startswith("-----BEGIN CERTIFICATE-----\n")
    assert cert_fingerprint(link.cert.cert) == cert_fingerprint(
        (certs / "certs/beta.pem").read_text()
    )
    assert link.cert.key.secret == "beta-key" and link.cert.remote_id is None
    assert link.secret == "beta-key"


def test_the_yaml_form_means_the_same(certs: Path) -> None:
    herc = compile_text(certs, LINK.format(auth=AUTH + ' remote_id "CN=hq-gw, O=Acme"')).ir
    yaml = compile_text(certs, YAML % ', remote_id: "CN=hq-gw, O=Acme"', "spec.herc.yaml").ir
    assert herc.enterprise == yaml.enterprise
    assert herc.enterprise[0].ipsec[0].cert.remote_id == "CN=hq-gw, O=Acme"  # type: ignore[union-attr]


def test_fmt_keeps_it_on_one_line() -> None:
    text = LINK.format(auth=AUTH + ' remote_id "CN=hq-gw"')
    formatted = format_source(parse_text(text, "spec.herc"))
    line = '    auth      cert "certs/beta.pem" ca "certs/hq-ca.pem" key secret("beta-key") '
    assert line + 'remote_id "CN=hq-gw"\n' in formatted
    squeezed = text.replace("auth      cert", "auth cert").replace('" ca', '"   ca')
    assert format_source(parse_text(squeezed, "spec.herc")) == formatted
    assert format_source(parse_text(formatted, "spec.herc")) == formatted


def _at(errors: list, code: str) -> list[tuple[int, int, str]]:  # type: ignore[type-arg]
    return [(d.span.line, d.span.col, d.message) for d in errors if d.code == code]


@pytest.mark.parametrize(
    ("auth", "code", "col", "says"),
    [
        ('cert "certs/none.pem" ca "certs/hq-ca.pem" key secret("k")', "E119", 20,
         'cannot read the certificate "certs/none.pem": No such file or directory'),
        ('cert "certs/garbage.pem" ca "certs/hq-ca.pem" key secret("k")', "E119", 20,
         "is not a PEM X.509 certificate"),
        ('cert "certs/ecdsa.pem" ca "certs/hq-ca.pem" key secret("k")', "E119", 20,
         "holds no RSA key (EC): the strongSwan plugins of a node verify RSA only"),
        ('cert "certs/hq-ca.pem" ca "certs/hq-ca.pem" key secret("k")', "E119", 20,
         "is a CA certificate: name the node's own certificate"),
        ('cert "certs/beta.pem" ca "certs/beta.pem" key secret("k")', "E119", 40,
         "is not a CA certificate (no basicConstraints CA:TRUE)"),
        ('cert "certs/beta.pem" ca "certs" key secret("k")', "E119", 40, "not a regular file"),
        ('cert "certs/beta.pem" ca "certs/hq-ca.pem"', "E104", 5, "auth takes: cert "),
        ('cert "certs/beta.pem" ca "certs/hq-ca.pem" key "k"', "E104", 62, 'expected secret("name")'),
        ('cert "certs/beta.pem" ca "certs/hq-ca.pem" pin secret("k")', "E104", 58, "auth takes: cert"),
        ('cert "certs/beta.pem" ca "x" ca "y" key secret("k")', "E103", 44, "ca given twice"),
        ('cert "certs/beta.pem" ca "certs/hq-ca.pem" key secret("k") remote_id "a#b"', "E116", 84,
         'invalid remote_id "a#b"'),
        ('psk secret("k") ca "certs/hq-ca.pem"', "E104", 5, "auth takes: psk"),
        ('rsa secret("k")', "E116", 15, 'expected psk or cert'),
    ],
)  # fmt: skip
def test_errors_point_at_the_file_name_or_the_word(
    certs: Path, auth: str, code: str, col: int, says: str
) -> None:
    found = _at(errors_of(certs, LINK.format(auth=auth)), code)
    assert found and found[0][:2] == (9, col) and says in found[0][2], found


def test_an_expired_or_future_certificate_is_refused(certs: Path) -> None:
    data = (certs / "certs/beta.pem").read_bytes()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=60)
    earlier = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    assert str(ipsec_certs.check(data, ca=False, now=later)).startswith("expired on ")
    assert str(ipsec_certs.check(data, ca=False, now=earlier)).startswith("is not valid before ")


def test_the_yaml_form_reports_at_its_own_positions(certs: Path) -> None:
    text = YAML.replace("certs/beta.pem", "certs/none.pem") % ""
    found = _at(errors_of(certs, text, "spec.herc.yaml"), codes.BAD_CERTIFICATE)
    assert [(line, col) for line, col, _ in found] == [(11, 22)]
    mixed = errors_of(certs, YAML % ", psk: k", "spec.herc.yaml")
    assert [d.code for d in mixed] == [codes.YAML_SCHEMA]


# ---------------------------------------------------------------- build


def _secrets(tmp: Path, values: dict[str, str]) -> Path:
    file = tmp / "secrets.yaml"
    file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    file.chmod(0o600)
    return file


def _build(certs: Path, tmp: Path, with_secrets: bool, auth: str = AUTH) -> Path:
    out = tmp / ("with" if with_secrets else "plain")
    args = [
        "build",
        str(_spec(certs, auth, f"{tmp.name}.herc")),
        "-o",
        str(out),
        "--backend",
        "ipsec",
    ]
    if with_secrets:
        key = (certs / "certs/beta.key").read_text()
        args += ["--secrets", str(_secrets(tmp, {"beta-key": key}))]
    assert cli.main(args) == 0
    return out


def test_the_build_writes_certificates_beside_swanctl_conf_and_the_key_only_in_secrets(
    certs: Path, tmp_path: Path
) -> None:
    key = (certs / "certs/beta.key").read_text()
    plain = _build(certs, tmp_path, with_secrets=False)
    files = sorted(str(p.relative_to(plain)) for p in plain.rglob("*") if p.is_file())
    assert [f for f in files if f.startswith("nodes/")] == [
        "nodes/beta/ipsec/swanctl.conf",
        "nodes/beta/ipsec/x509/hq-branch.pem",
        "nodes/beta/ipsec/x509ca/hq-branch.pem",
    ]
    conf = (plain / "nodes/beta/ipsec/swanctl.conf").read_text()
    assert (
        "    local {\n      auth = pubkey\n      certs = hq-branch.pem\n    }\n"
        "    remote {\n      auth = pubkey\n      id = 192.0.2.254\n      cacerts = hq-branch.pem\n    }\n"
    ) in conf
    doc = (Path(__file__).parent.parent / "docs" / "outputs.md").read_text()
    section = doc.split("### With certificates (`auth cert`)")[1].split("\n## ")[0]
    shown = section.split("```text\n")[1].split("```")[0]
    assert shown in conf  # outputs.md shows the build's own lines
    ca = (plain / "nodes/beta/ipsec/x509ca/hq-branch.pem").read_text()
    assert cert_fingerprint(ca) == cert_fingerprint((certs / "certs/hq-ca.pem").read_text())
    out = _build(certs, tmp_path, with_secrets=True)
    private = out / "nodes/beta/secrets/private/hq-branch.pem"
    assert private.read_text() == key and private.stat().st_mode & 0o777 == 0o600
    body = key.splitlines()[1]
    leaks = [p for p in out.rglob("*") if p.is_file() and p != private and body in p.read_text()]
    assert leaks == []


@pytest.mark.skipif(strongswan.available() is not None, reason=str(strongswan.available()))
def test_a_real_charon_loads_the_certificates_and_the_key(certs: Path, tmp_path: Path) -> None:
    out = _build(certs, tmp_path, with_secrets=True, auth=AUTH + ' remote_id "CN=hq-gw, O=Acme"')
    node = out / "nodes/beta"
    with strongswan.charon(tmp_path) as c:
        creds = c.swanctl("--load-creds", "--file", str(node / "secrets/ipsec.secrets.conf"))
        conns = c.swanctl("--load-conns", "--file", str(node / "ipsec/swanctl.conf"))
        listed = c.swanctl("--list-conns")
    for done in (creds, conns):
        assert done.returncode == 0, done.stdout + done.stderr
        assert not strongswan.FAILED.search(done.stdout + done.stderr), done.stdout + done.stderr
    assert f"loaded RSA key from '{node}/secrets/private/hq-branch.pem'" in creds.stdout
    assert "loaded connection 'hq-branch'" in conns.stdout
    assert "certs: O=Hercules test, CN=beta" in listed.stdout
    assert "id: O=Hercules test, CN=beta" in listed.stdout  # the certificate's subject
    assert "cacerts: O=Hercules test, CN=hq-ca" in listed.stdout
    assert "id: CN=hq-gw, O=Acme" in listed.stdout  # a DN with a comma stays one id


# ---------------------------------------------------------------- plan and apply


def _resource(certs: Path):  # type: ignore[no-untyped-def]
    model = compile_text(certs, LINK.format(auth=AUTH)).ir
    return state_of(desired_state(model, "beta"))["ipsec.hq-branch"]


def test_the_plan_shows_the_certificates_by_fingerprint_and_the_key_as_sensitive(
    certs: Path,
) -> None:
    r = _resource(certs)
    cert = (certs / "certs/beta.pem").read_text()
    assert r.attrs["cert"] == cert_fingerprint(cert) and "psk" not in r.attrs
    shown = render_plan(diff({r.address: r}, {}))
    assert re.search(rf'\+ cert +  = "{cert_fingerprint(cert)}"', shown), shown
    assert re.search(r"\+ key +  = \(sensitive\)", shown), shown
    assert "BEGIN" not in shown


class KeyedVici(FakeVici):
    """The fake charon, with private keys by id (load-key, get-keys, unload-key)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}

    def request(self, command: str, message=None):  # type: ignore[no-untyped-def]
        msg = dict(message or {})
        if command == "load-key":
            self.calls.append((command, msg))
            pub = serialization.load_pem_private_key(msg["data"].encode(), None).public_key()
            kid = hashlib.sha1(pub.public_bytes(Encoding.DER, PublicFormat.PKCS1)).hexdigest()
            self.keys[kid] = msg["data"]
            return {"success": "yes", "id": kid}
        if command == "get-keys":
            return {"keys": sorted(self.keys)}
        if command == "unload-key":
            self.calls.append((command, msg))
            self.keys.pop(msg["id"], None)
            return {}
        return super().request(command, message)


def test_apply_loads_the_key_then_the_connection_with_its_certificates(
    certs: Path, tmp_path: Path
) -> None:
    r = _resource(certs)
    key = (certs / "certs/beta.key").read_text()
    vici, record = KeyedVici(), IpsecRecord(tmp_path / "beta.ipsec.json")
    IpsecExecutor(vici, record, {"beta-key": key}).create(r)
    assert [c for c, _ in vici.calls] == ["load-key", "load-conn", "initiate"]
    tree = vici.calls[1][1]["hq-branch"]
    assert tree["local"]["certs"] == [(certs / "certs/beta.pem").read_text()]
    assert tree["remote"]["cacerts"] == [(certs / "certs/hq-ca.pem").read_text()]
    assert key.splitlines()[1] not in record.path.read_text()
    live, foreign = read_ipsec(IpsecQuery(vici, record))
    assert foreign == set() and live[0].attrs == r.attrs
    vici.keys.clear()  # charon lost the key: the plan shows it
    (again,), _ = read_ipsec(IpsecQuery(vici, record))
    assert "key" not in again.attrs
    IpsecExecutor(vici, record, {"beta-key": key}).delete(r)
    assert vici.calls[-1] == (
        "unload-key",
        {"id": key_id(IpsecContent.from_text(r.content or "").cert or "")},
    )


def test_a_key_that_is_not_the_certificates_is_refused_without_showing_it(
    certs: Path, tmp_path: Path
) -> None:
    r = _resource(certs)
    other = (certs / "certs/own-ca.key").read_text()
    vici = KeyedVici()
    executor = IpsecExecutor(vici, IpsecRecord(tmp_path / "r.json"), {"beta-key": other})
    with pytest.raises(SecretUnavailable) as info:
        executor.create(r)
    assert "is not the private key of its certificate" in str(info.value)
    assert other.splitlines()[1][:20] not in str(info.value) and vici.calls == []


def test_a_new_certificate_is_a_change_of_cert_and_apply_loads_it(
    certs: Path, tmp_path: Path
) -> None:
    key = (certs / "certs/beta.key").read_text()
    vici, record = KeyedVici(), IpsecRecord(tmp_path / "beta.ipsec.json")
    old = _resource(certs)
    IpsecExecutor(vici, record, {"beta-key": key}).create(old)
    renewed = tmp_path / "renewed"
    (renewed / "certs").mkdir(parents=True)
    ca = pki.Pair(certs / "certs/own-ca.pem", certs / "certs/own-ca.key")
    fresh = pki.make_cert(renewed / "certs", "beta", ca)
    (renewed / "certs/hq-ca.pem").write_text((certs / "certs/hq-ca.pem").read_text())
    new = _resource(renewed)
    live = {r.address: r for r in read_ipsec(IpsecQuery(vici, record))[0]}
    plan = diff({new.address: new}, live)
    shown = render_plan(plan)
    assert "~ ipsec.hq-branch" in shown and re.search(r"~ cert +=", shown), shown
    assert [[name for name, *_ in c.changed] for c in plan.changes] == [["cert"]]
    secrets = {"beta-key": fresh.key.read_text()}
    IpsecExecutor(vici, record, secrets).update(live[new.address], new, ["cert"])
    assert vici.calls[-4][0] == "load-key"
    assert vici.calls[-3][1]["hq-branch"]["local"]["certs"] == [fresh.cert.read_text()]
    after = {r.address: r for r in read_ipsec(IpsecQuery(vici, record))[0]}
    assert diff({new.address: new}, after).no_changes
    undo = IpsecExecutor(vici, record, secrets)  # its undo: the old certificate, the new key
    undo.update(after[new.address], old, ["cert"])
    assert vici.calls[-3][1]["hq-branch"]["local"]["certs"] == [
        (certs / "certs/beta.pem").read_text()
    ]


def test_the_lab_refuses_a_certificate_link_by_name(certs: Path) -> None:
    model = compile_text(certs, LINK.format(auth=AUTH)).ir
    with pytest.raises(LabError, match="takes auth psk only, not hq-branch's auth cert"):
        sites(model, topology_of(model, "hx"), certs)


def test_plan_refuses_a_key_that_is_not_the_certificates_and_names_only_the_secret(
    certs: Path, tmp_path: Path
) -> None:

    r = _resource(certs)
    right, wrong = (certs / "certs/beta.key").read_text(), (certs / "certs/own-ca.key").read_text()
    assert IpsecSetup(secrets_file=str(_secrets(tmp_path, {"beta-key": right}))).secrets([r]) == {
        "beta-key": right
    }
    setup = IpsecSetup(secrets_file=str(_secrets(tmp_path, {"beta-key": wrong})))
    with pytest.raises(OperationError) as info:
        setup.secrets([r])
    assert str(info.value).startswith("ipsec.hq-branch: secret 'beta-key' is not the private key")
    assert wrong.splitlines()[1][:20] not in str(info.value)


def test_ir_json_holds_the_certificates_and_reads_back(certs: Path) -> None:
    model = compile_text(certs, LINK.format(auth=AUTH + ' remote_id "CN=hq-gw"')).ir
    data = ir.to_data(model)
    (link,) = data["enterprise"][0]["ipsec"]
    assert link["psk"] is None and link["cert"]["key"] == {"secret": "beta-key"}
    assert ir.from_data(data).enterprise == model.enterprise
