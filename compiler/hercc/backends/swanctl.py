"""nodes/<node>/ipsec/swanctl.conf: the node's IPsec links for swanctl (strongSwan 5.9, Debian 12).

One connection per `ipsec` block, named <enterprise>-<ipsec>, IKEv2 with
pre-shared keys or certificates, one CHILD_SA of the same name with the traffic selectors. The
IKE proposals are the spec's (checked at compile time, ipsec_proposals.py);
the ESP proposals are the same algorithms without the PRF, so the DH group
gives the CHILD_SA perfect forward secrecy. start_action = start: charon
initiates when the file is loaded.

The keys are not in this file. It ends with `include ../secrets/ipsec.secrets.conf`,
which swanctl resolves against this file's directory, so nodes/<node>/ipsec/
and nodes/<node>/secrets/ are installed side by side; a build writes that file
(0600) only when given --secrets (render_secrets). Without it swanctl loads the
connections and says "no files found matching" for the include.

With `auth cert` the directory is a swanctl directory: the node's certificate
is x509/<connection>.pem and the remote's CA x509ca/<connection>.pem, named
by `certs` and `cacerts` (swanctl reads them relative to the directory of
the swanctl.conf it is given); charon takes the certificate's subject as the
node's id, and the remote must prove `remote_id` (default: its address). The
private key is a secret: render_secrets writes it to
nodes/<node>/secrets/private/<connection>.pem, which swanctl loads with
`swanctl --load-creds --file nodes/<node>/secrets/ipsec.secrets.conf` (its
private/ directory), before `swanctl --load-conns --file .../ipsec/swanctl.conf`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from hercc import ir
from hercc.backends.memo import RenderMemo
from hercc.ipsec_proposals import esp_of

SECRETS_FILE = "ipsec.secrets.conf"
INCLUDE = f"../secrets/{SECRETS_FILE}"
CERT_DIR, CA_DIR, KEY_DIR = "x509", "x509ca", "private"  # swanctl's own directory names


def connection_name(enterprise: str, ipsec: str) -> str:
    return f"{enterprise}-{ipsec}"


def _links(model: ir.IR, node: str) -> list[tuple[str, ir.Ipsec]]:
    links = [
        (connection_name(e.name, i.name), i)
        for e in model.enterprise
        for i in e.ipsec
        if i.node == node
    ]
    return sorted(links, key=lambda x: x[0])


def local_addr(node: ir.Node) -> str:
    """The node's underlay address: its endpoint's host, or %any when it has none (nat)."""
    for m in node.networks:
        if m.endpoint is not None:
            return m.endpoint.rsplit(":", 1)[0].strip("[]")
    return "%any"


# A connection as data: the tree swanctl.conf writes and VICI's load-conn takes
# (values are text or lists of text), so the file and plan/apply load the same thing.
Tree = dict[str, "str | list[str] | Tree"]


def _auth(name: str, link: ir.Ipsec) -> tuple[Tree, Tree]:
    """The connection's local and remote sections: PSK, or certificates by file name."""
    if link.cert is None:
        return {"auth": link.auth}, {"auth": link.auth, "id": link.remote}
    remote_id = link.cert.remote_id or link.remote
    local: Tree = {"auth": link.auth, "certs": [f"{name}.pem"]}
    return local, {"auth": link.auth, "id": remote_id, "cacerts": [f"{name}.pem"]}


def cert_files(name: str, link: ir.Ipsec) -> dict[str, str]:
    """The certificates of a connection by their path in the swanctl directory (none with PSK)."""
    if link.cert is None:
        return {}
    return {f"{CERT_DIR}/{name}.pem": link.cert.cert, f"{CA_DIR}/{name}.pem": link.cert.ca}


def remote_id(link: ir.Ipsec) -> str:
    """The identity the remote proves: its address, or the certificate's remote_id."""
    return (link.cert.remote_id if link.cert else None) or link.remote


def connection_tree(name: str, link: ir.Ipsec, local: str) -> Tree:
    conn: Tree = {"version": "2", "local_addrs": [local], "remote_addrs": [link.remote]}
    if link.remote_port is not None:
        conn["remote_port"] = str(link.remote_port)
    child: Tree = {
        "local_ts": list(link.local_ts),
        "remote_ts": list(link.remote_ts),
        "esp_proposals": [esp_of(p) for p in link.proposals],
        "start_action": "start",
    }
    local_auth, remote_auth = _auth(name, link)
    conn |= {
        "proposals": list(link.proposals),
        "local": local_auth,
        "remote": remote_auth,
        "children": {name: child},
    }
    return conn


def connections(model: ir.IR, node: ir.Node) -> list[tuple[str, ir.Ipsec, Tree]]:
    """The node's connections, by name: each with its link and its tree."""
    local = local_addr(node)
    return [
        (name, link, connection_tree(name, link, local)) for name, link in _links(model, node.name)
    ]


def _lines(tree: Tree, indent: str) -> list[str]:
    out: list[str] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += [f"{indent}{key} {{", *_lines(value, indent + "  "), f"{indent}}}"]
        else:
            out.append(f"{indent}{key} = {value if isinstance(value, str) else ', '.join(value)}")
    return out


def render_node(model: ir.IR, node: ir.Node, memo: RenderMemo) -> dict[str, str]:
    conns = connections(model, node)
    if not conns:
        return {}
    lines = [
        f"# Generated by hercc (swanctl): node {node.name}, IPsec links.",
        "# Do not edit: rebuild from the spec instead. The keys are in the included file.",
        "connections {",
        *_lines({name: tree for name, _link, tree in conns}, "  "),
        "}",
        "",
        f"include {INCLUDE}",
    ]
    files = {f"nodes/{node.name}/ipsec/swanctl.conf": "\n".join(lines) + "\n"}
    for name, link, _tree in conns:
        files |= {f"nodes/{node.name}/ipsec/{p}": t for p, t in cert_files(name, link).items()}
    return files


def secret_names(model: ir.IR, node: str | None = None) -> list[str]:
    """The secrets the IPsec links need (of one node, or of all), each once, sorted."""
    names = {i.secret for e in model.enterprise for i in e.ipsec if node in (None, i.node)}
    return sorted(names)


def render_secrets(model: ir.IR, node: ir.Node, values: Mapping[str, str]) -> dict[str, str]:
    """nodes/<node>/secrets/ipsec.secrets.conf: one `ike-` secret per PSK link, by the remote's
    id, the value base64-encoded (0s...), so no character of it needs quoting; and the private
    key of each certificate link as private/<connection>.pem (see the module docstring)."""
    links = _links(model, node.name)
    if not links:
        return {}
    base = f"nodes/{node.name}/secrets"
    files: dict[str, str] = {}
    lines = ["# Generated by hercc: the IPsec pre-shared keys. Keep it 0600.", "secrets {"]
    for name, link in links:
        if link.cert is not None:
            files[f"{base}/{KEY_DIR}/{name}.pem"] = values[link.secret].strip() + "\n"
            continue
        value = base64.b64encode(values[link.secret].encode()).decode()
        lines += [
            f"  ike-{name} {{",
            f"    id-remote = {link.remote}",
            f"    secret = 0s{value}",
            "  }",
        ]
    lines.append("}")
    return {f"{base}/{SECRETS_FILE}": "\n".join(lines) + "\n", **files}
