"""A spec compiled for the lab: fresh keys for every node, compiled in.

The routing pass copies each node's public key onto the peers that name it,
so keys filled in after compiling would miss the peers. compile_for_lab
generates a key pair per node first and hands the public keys to the
compiler (compile_spec's `pubkeys`), so the IR, its peers and the rendered
configs all carry them; the Lab then runs each node with its private key.
"""

from __future__ import annotations

from hercc import ir
from hercc.diagnostics import LabError
from hercc.lab.keys import GeneratedKeys, gateway_owner
from hercc.pipeline import Compiled, compile_spec


def compile_for_lab(
    path: str,
    keys: GeneratedKeys | None = None,
    *,
    use_lock: bool = False,
    sources: dict[str, str] | None = None,
) -> tuple[Compiled, GeneratedKeys]:
    """Compile `path` with a fresh key pair for every node and gateway (`keys`, default: new ones).

    The lock file is read only with `use_lock` (never written). `sources`
    collects the text of the files read, for rendering diagnostics.
    Returns the compiled spec (its IR carries the public keys, on nodes and on
    peers) and the keys, to pass to Lab(compiled.ir, keys=keys). Pinned
    `pubkey`s cannot be run (the lab has no private key for them): LabError.
    """
    keys = keys if keys is not None else GeneratedKeys()
    try:
        plain = compile_spec(path, sources, use_lock=use_lock)
        owners = [n.name for n in plain.ir.nodes]
        owners += [gateway_owner(g.name) for g in plain.ir.gateways]
        pubkeys = keys.generate(owners)
        compiled = compile_spec(path, use_lock=use_lock, pubkeys=pubkeys)
    except BaseException:
        keys.discard()
        raise
    pinned = [n.name for n in compiled.ir.nodes if n.pubkey != pubkeys[n.name]]
    if pinned:
        keys.discard()
        raise LabError(f"nodes with a pinned pubkey cannot run in the lab: {', '.join(pinned)}")
    _check_peer_keys(compiled.ir)
    return compiled, keys


def _check_peer_keys(model: ir.IR) -> None:
    keys = {n.name: n.pubkey for n in model.nodes}
    for node in model.nodes:
        for m in node.networks:
            for peer in m.peers:
                if peer.pubkey != keys[peer.node]:
                    raise LabError(
                        f"{node.name}@{m.network}: peer {peer.node} carries another key "
                        "than its node"
                    )
