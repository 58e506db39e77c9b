"""The enterprise block: vxlan, ipsec, vlan and bridge, each one table and one builder."""

from __future__ import annotations

from hercc import ast, codes, ipsec_certs, ipsec_proposals, values
from hercc.diagnostics import Collector
from hercc.syntax import Stmt, Value

from .fields import Option, label, read_block, read_head

PSK_USAGE = 'psk secret("NAME")'
CERT_USAGE = 'cert "FILE" ca "FILE" key secret("NAME") [remote_id "ID"]'
_CERT_FIELDS = ("ca", "key", "remote_id")
_ID_FORBIDDEN = set('"#{}\n\\')  # what would end or break a swanctl.conf value


def _remote_id(v: Value, diags: Collector) -> str | None:
    text = values.string(v, diags)
    if text is None:
        return None
    if not text.strip() or _ID_FORBIDDEN & set(text):
        diags.error(codes.BAD_VALUE, f'invalid remote_id "{text}"', v.span)
        return None
    return text


def _cert_fields(stmt: Stmt, diags: Collector) -> dict[str, Value] | None:
    """The `ca`, `key` and `remote_id` pairs after `auth cert "FILE"`, by keyword."""
    rest = stmt.args[2:]
    fields: dict[str, Value] = {}
    for word, v in zip(rest[::2], rest[1::2], strict=False):
        if word.kind != "atom" or word.text not in _CERT_FIELDS:
            diags.error(codes.ARGUMENTS, f"auth takes: {CERT_USAGE}", word.span)
            return None
        if word.text in fields:
            diags.error(codes.REPEATED, f"auth cert: {word.text} given twice", word.span)
            return None
        fields[word.text] = v
    if len(rest) % 2 or not {"ca", "key"} <= set(fields):
        diags.error(codes.ARGUMENTS, f"auth takes: {CERT_USAGE}", stmt.span)
        return None
    return fields


def _cert(stmt: Stmt, diags: Collector) -> tuple[str, str, ast.IpsecCertDecl] | None:
    """auth cert "FILE" ca "FILE" key secret("NAME") [remote_id "ID"]: the certificate first,
    then the pairs in any order. The files are read here (ipsec_certs.py)."""
    if len(stmt.args) < 2:
        diags.error(codes.ARGUMENTS, f"auth takes: {CERT_USAGE}", stmt.span)
        return None
    fields = _cert_fields(stmt, diags)
    if fields is None:
        return None
    pems = []
    for v, ca in ((stmt.args[1], False), (fields["ca"], True)):
        name = values.string(v, diags)
        pems.append(ipsec_certs.read_certificate(name, v.span, diags, ca=ca) if name else None)
    ref = values.secret_ref(fields["key"], diags)
    remote_id = _remote_id(fields["remote_id"], diags) if "remote_id" in fields else None
    cert, ca_pem = pems
    if cert is None or ca_pem is None or ref is None:
        return None
    if "remote_id" in fields and remote_id is None:
        return None
    return "pubkey", ref, ast.IpsecCertDecl(cert, ca_pem, remote_id)


def _auth(stmt: Stmt, diags: Collector) -> tuple[str, str, ast.IpsecCertDecl | None] | None:
    """auth psk secret("NAME"), or auth cert ... (CERT_USAGE)."""
    if not stmt.args:
        diags.error(codes.ARGUMENTS, f"auth takes: {PSK_USAGE} or {CERT_USAGE}", stmt.span)
        return None
    method = values.choice("psk", "cert")(stmt.args[0], diags)
    if method == "cert":
        return _cert(stmt, diags)
    if method is None:
        return None
    if len(stmt.args) != 2:
        diags.error(codes.ARGUMENTS, f"auth takes: {PSK_USAGE}", stmt.span)
        return None
    ref = values.secret_ref(stmt.args[1], diags)
    return ("psk", ref, None) if ref else None


def _proposal(v: Value, diags: Collector) -> str | None:
    """An IKE proposal string, refused here (E118) when strongSwan would refuse it."""
    text = values.string(v, diags)
    if text is None:
        return None
    problem = ipsec_proposals.problem(text)
    if problem is not None:
        diags.error(codes.BAD_PROPOSAL, f'invalid IKE proposal "{text}": {problem}', v.span)
        return None
    return text


VXLAN = {
    "node": Option("one", values.name, required=True),
    "vni": Option("one", values.vni, required=True),
    "local": Option("one", values.address, required=True),
    "remote": Option("one", values.address, required=True),
    "port": Option("one", values.port),
    "bridge": Option("one", values.ifname),
}
IPSEC = {
    "node": Option("one", values.name, required=True),
    "remote": Option("one", values.endpoint, required=True),
    "local_ts": Option("list", values.cidr, required=True),
    "remote_ts": Option("list", values.cidr, required=True),
    "auth": Option("custom", _auth, required=True),
    "proposals": Option("list", _proposal),
}
VLAN = {
    "node": Option("one", values.name, required=True),
    "parent": Option("one", values.ifname, required=True),
    "id": Option("one", values.vlan_id, required=True),
    "address": Option("one", values.interface),
}
BRIDGE = {
    "node": Option("one", values.name, required=True),
    "ports": Option("list", values.ifname),
}


def _vxlan(stmt: Stmt, diags: Collector) -> ast.VxlanDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, VXLAN, f"vxlan {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.VxlanDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.values["vni"],
        f.values["local"],
        f.values["remote"],
        f.get("port", ast.DEFAULT_VXLAN_PORT),
        f.get("bridge"),
        f.spans,
    )


def _ipsec(stmt: Stmt, diags: Collector) -> ast.IpsecDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, IPSEC, f"ipsec {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    method, secret, cert = f.values["auth"]
    return ast.IpsecDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.values["remote"],
        f.values["local_ts"],
        f.values["remote_ts"],
        method,
        secret,
        f.get("proposals", ("aes256-sha256-modp2048",)),
        f.spans,
        cert,
    )


def _vlan(stmt: Stmt, diags: Collector) -> ast.VlanDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, VLAN, f"vlan {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.VlanDecl(
        head[0],
        stmt.args[0].span,
        f.values["node"],
        f.values["parent"],
        f.values["id"],
        f.get("address"),
        f.spans,
    )


def _bridge(stmt: Stmt, diags: Collector) -> ast.BridgeDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, BRIDGE, f"bridge {label(stmt)}", diags)
    if head is None or not f.complete:
        return None
    return ast.BridgeDecl(head[0], stmt.args[0].span, f.values["node"], f.get("ports", ()), f.spans)


ENTERPRISE = {
    "vxlan": Option("block", _vxlan, repeat=True),
    "ipsec": Option("block", _ipsec, repeat=True),
    "vlan": Option("block", _vlan, repeat=True),
    "bridge": Option("block", _bridge, repeat=True),
}


def enterprise(stmt: Stmt, diags: Collector) -> ast.EnterpriseDecl | None:
    head = read_head(stmt, 1, diags)
    f = read_block(stmt, ENTERPRISE, f"enterprise {label(stmt)}", diags)
    if head is None:
        return None
    return ast.EnterpriseDecl(
        head[0],
        stmt.args[0].span,
        tuple(v for v, _ in f.items("vxlan")),
        tuple(v for v, _ in f.items("ipsec")),
        tuple(v for v, _ in f.items("vlan")),
        tuple(v for v, _ in f.items("bridge")),
    )
