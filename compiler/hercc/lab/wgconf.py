"""wg(8) setconf text for one interface, and the endpoint-free first stage of it.

A Renderer gives the setconf text of one (node, network). `backend_render`
takes it from the real backend (hercc.backends.wireguard, the file
nodes/<node>/wireguard/<network>.conf); `render_setconf` is the lab's own
minimal rendering, for hand-made IRs (hercc.lab.naive_mesh).
"""

from __future__ import annotations

from collections.abc import Callable

from hercc import ir
from hercc.backends import wireguard
from hercc.lab.run import LabError

Renderer = Callable[[ir.IR, ir.Node, ir.Membership], str]


class BackendRenderer:
    """The real backend's file for each (node, network); renders the whole IR once per IR."""

    def __init__(self) -> None:
        self._model: ir.IR | None = None
        self._files: dict[str, str] = {}

    def __call__(self, model: ir.IR, node: ir.Node, member: ir.Membership) -> str:
        if self._model is not model:
            self._files = wireguard.render(model)
            self._model = model
        path = f"nodes/{node.name}/wireguard/{member.network}.conf"
        try:
            return self._files[path]
        except KeyError:
            raise LabError(
                f"the wireguard backend rendered no {path} (a peer without a public key?)"
            ) from None


def backend_render(model: ir.IR, node: ir.Node, member: ir.Membership) -> str:
    """The real backend's setconf file for one (node, network), as a Renderer."""
    return BackendRenderer()(model, node, member)


def render_setconf(model: ir.IR, node: ir.Node, member: ir.Membership) -> str:
    """[Interface] ListenPort and one [Peer] per IR peer; no private key (set apart)."""
    lines = ["[Interface]", f"ListenPort = {member.listen_port}"]
    for peer in member.peers:
        if peer.pubkey is None:
            raise LabError(f"{node.name}@{member.network}: peer {peer.node} has no public key")
        lines += ["", "[Peer]", f"# {peer.node}", f"PublicKey = {peer.pubkey}"]
        if peer.allowed_ips:
            lines.append(f"AllowedIPs = {', '.join(peer.allowed_ips)}")
        if peer.endpoint is not None:
            lines.append(f"Endpoint = {peer.endpoint}")
        if peer.keepalive_s:
            lines.append(f"PersistentKeepalive = {peer.keepalive_s}")
    return "\n".join(lines) + "\n"


def strip_endpoints(conf: str) -> str:
    """The same config without Endpoint and PersistentKeepalive lines.

    Loaded first on every interface, it makes every peer known everywhere
    before anyone can send a handshake, so no first handshake is lost (and
    retried only 5 s later) because its receiver had not loaded its peers yet.
    """
    kept = []
    for line in conf.splitlines():
        key = line.split("=", 1)[0].strip().lower()
        if "=" in line and key in ("endpoint", "persistentkeepalive"):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def handshake_expected(conf: str) -> list[str]:
    """Public keys of the peers this side dials by itself (Endpoint and PersistentKeepalive)."""
    found: list[str] = []
    key: str | None = None
    endpoint = keepalive = False

    def flush() -> None:
        if key is not None and endpoint and keepalive:
            found.append(key)

    for line in conf.splitlines():
        stripped = line.strip()
        if stripped.lower() == "[peer]" or stripped.lower() == "[interface]":
            flush()
            key, endpoint, keepalive = None, False, False
            continue
        if "=" not in stripped or stripped.startswith("#"):
            continue
        name, value = (s.strip() for s in stripped.split("=", 1))
        name = name.lower()
        if name == "publickey":
            key = value
        elif name == "endpoint":
            endpoint = True
        elif name == "persistentkeepalive":
            keepalive = value not in ("", "0", "off")
    flush()
    return found
