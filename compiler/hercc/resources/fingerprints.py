"""Secrets as fingerprints: how resources hold a private or preshared key without holding it.

A fingerprint is a short hash that tells equal keys from different ones and
never gives the key back. Resources list such attributes as sensitive
(resources/model.py), so renderers print "(sensitive)".
"""

from __future__ import annotations

import hashlib

from hercc.resources.canonical import canonical_private_key

__all__ = ["fingerprint", "private_key_fingerprint"]


def fingerprint(secret: str) -> str:
    """A short, stable stand-in for a key: equal keys, equal fingerprints; never the key."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def private_key_fingerprint(key: str) -> str:
    """The fingerprint of a private key as a device stores it (Curve25519-clamped).

    Both the kernel and wireguard-go clamp a key when it is set; clamping is
    idempotent, so a key from a keys file and the same key read back from a
    device get one fingerprint. Raises InvalidValue for a malformed key (the
    message holds no key material).
    """
    return fingerprint(canonical_private_key(key))
