"""Generated specs for the benchmarks: nodes, keys and endpoints, deterministic."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def key_pair(seed: str) -> tuple[str, str]:
    """A deterministic X25519 key pair (private, public) in base64, as wg(8) prints them."""
    raw = hashlib.sha256(seed.encode()).digest()
    private = X25519PrivateKey.from_private_bytes(raw)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def endpoint(i: int) -> str:
    return f"198.18.{i // 250}.{i % 250 + 1}"


def mesh_spec(
    nodes: int, *, nat_every: int = 0, relays: int | None = None
) -> tuple[str, list[str]]:
    """A spec of `nodes` nodes with pinned public keys; returns (text, private keys).

    nat_every=10 makes every 10th... no: nodes i with i % nat_every != 0 are nat
    when nat_every > 0 (so nat_every=10 gives 90% nat). relays limits `relay on`
    to the first that many public nodes.
    """
    out = ["network mesh {", "  range  10.0.0.0/8", "  subnets /24", "}", ""]
    privates: list[str] = []
    public_seen = 0
    for i in range(nodes):
        private, public = key_pair(f"hercules-bench-{i}")
        privates.append(private)
        nat = nat_every > 0 and i % nat_every != 0
        lines = [f"node n{i:05d} {{", "  network mesh", f'  pubkey "{public}"']
        if nat:
            lines.append("  nat")
        else:
            lines.append(f"  endpoint {endpoint(i)}")
            if relays is not None and public_seen >= relays:
                lines.append("  relay off")
            public_seen += 1
        lines.append("}")
        out.append("\n".join(lines))
    return "\n".join(out) + "\n", privates
