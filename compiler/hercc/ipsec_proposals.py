"""IKE and ESP proposals as strongSwan 5.9 (Debian 12) reads them, checked before charon sees them.

A proposal is "default" or algorithm keywords joined by "-": encryption,
integrity, PRF, Diffie-Hellman groups and esn/noesn (meant for ESP; charon
takes and ignores them in IKE). The tables are strongSwan's proposal keywords
(src/libstrongswan/crypto/proposal/proposal_keywords_static.txt); the rules
are those charon applies when it builds a proposal from a string (proposal.c:
an encryption algorithm; classic encryption needs integrity, AEAD does not mix
with it; IKE needs a DH group, and a PRF when its encryption is AEAD). Which
algorithms a charon can run depends on its plugins; which keywords it accepts
does not. tests/test_backends_ipsec.py has a real charon judge the examples.
"""

from __future__ import annotations

from itertools import product

_AES = ("aes128", "aes192", "aes256")
_ICV = ("8", "64", "12", "96", "16", "128", "")  # AEAD tag lengths, in bytes or bits

ENCRYPTION = frozenset(
    {"aes", *_AES, *(a + "ctr" for a in _AES), "3des", "des", "cast128", "blowfish"}
    | {f"blowfish{n}" for n in (128, 192, 256)}
    | {"camellia", *(f"camellia{n}{m}" for n in (128, 192, 256) for m in ("", "ctr"))}
    | {"twofish", *(f"twofish{n}" for n in (128, 192, 256))}
    | {"serpent", *(f"serpent{n}" for n in (128, 192, 256))}
)
AEAD = frozenset(
    {f"{a}{mode}{icv}" for a, mode, icv in product(_AES, ("gcm", "ccm"), _ICV)}
    | {f"camellia{n}ccm{icv}" for n in (128, 192, 256) for icv in _ICV}
    | {"aes128gmac", "aes192gmac", "aes256gmac", "chacha20poly1305"}
)
INTEGRITY = frozenset(
    {"md5", "md5_128", "sha", "sha1", "sha1_160", "aesxcbc", "aescmac", "camelliaxcbc"}
    | {"sha256", "sha2_256", "sha256_96", "sha2_256_96", "sha384", "sha2_384"}
    | {"sha512", "sha2_512"}
)
PRF = frozenset(
    {"prfmd5", "prfsha1", "prfsha256", "prfsha384", "prfsha512"}
    | {"prfaesxcbc", "prfaescmac", "prfcamelliaxcbc"}
)
DH = frozenset(
    {f"modp{n}" for n in (768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)}
    | {"modp1024s160", "modp2048s224", "modp2048s256"}
    | {"ecp192", "ecp224", "ecp256", "ecp384", "ecp521"}
    | {"ecp224bp", "ecp256bp", "ecp384bp", "ecp512bp"}
    | {"curve25519", "x25519", "curve448", "x448"}
)
ESN = frozenset({"esn", "noesn"})
DEFAULT = "default"


def problem(proposal: str) -> str | None:
    """Why charon would refuse `proposal` as an IKE proposal; None if it takes it."""
    if proposal == DEFAULT:
        return None
    words = proposal.split("-")
    known = ENCRYPTION | AEAD | INTEGRITY | PRF | DH | ESN  # charon ignores esn in IKE
    unknown = [w for w in words if w not in known]
    if unknown:
        return f'strongSwan knows no IKE algorithm "{unknown[0]}"'
    classic = [w for w in words if w in ENCRYPTION]
    aead = [w for w in words if w in AEAD]
    if not classic and not aead:
        return "no encryption algorithm"
    if classic and aead:
        return "AEAD and classic encryption cannot share a proposal"
    if classic and not any(w in INTEGRITY for w in words):
        return "classic (non-AEAD) encryption needs an integrity algorithm"
    if not any(w in DH for w in words):
        return "an IKE proposal needs a Diffie-Hellman group"
    if aead and not any(w in PRF for w in words):
        return "an IKE proposal with AEAD encryption needs a PRF"
    return None


def esp_of(proposal: str) -> str:
    """The ESP proposal that mirrors an IKE one: the same algorithms without the PRF
    (its DH group gives the CHILD_SA perfect forward secrecy)."""
    return "-".join(w for w in proposal.split("-") if w not in PRF)
