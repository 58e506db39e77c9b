"""Live nftables tables of a namespace as `nft` Resources (hercc.resources).

`Nft` is the boundary: the ruleset of one namespace, as JSON (`nft -j list
ruleset`) and as text (`nft list ruleset`); `NftCli` runs them with `ip
netns exec`. The text is read only for the tables' comments: nftables 1.0.6
leaves a table's comment out of its JSON.

A table is ours when its comment starts with "hercules " (the mark
backends/nftables.py writes, followed by the digest of the ruleset it
loaded); every other table is foreign ("<NS>/<family>/<table>"). An owned
table reads as

  nft  "<NS>/<family>/<table>": digest (the comment's rest), rules (rules per
       chain, resources.canonical.canonical_nft_rules, chains without rules
       included)

so a hand edit (a rule added or deleted, a chain added) changes `rules`,
and a table loaded from another ruleset changes `digest`.
"""

from __future__ import annotations

import json
import re
import shutil
from typing import Any, Protocol

from hercc.resources.canonical import canonical_nft_rules
from hercc.resources.ids import NftId, format_id
from hercc.resources.model import OWNER_ALIAS, Resource
from hercc.state.errors import StateError
from hercc.sysio.process import run

__all__ = ["Nft", "NftCli", "read_tables", "tables_of"]

MARK = OWNER_ALIAS + " "
# `table inet NAME {` followed by its comment line, in `nft list ruleset`'s text
_COMMENT = re.compile(r'^table (\S+) (\S+) \{\n\tcomment "((?:[^"\\]|\\.)*)"$', re.MULTILINE)


class Nft(Protocol):
    def ruleset(self, ns: str, as_json: bool) -> str:
        """The ruleset of namespace `ns`, as `nft [-j] list ruleset` prints it."""
        ...


class NftCli:
    """`ip netns exec NS nft [-j] list ruleset`, bounded. Without nft, no ruleset: a
    node where nothing could load a table has none (plans need no nft there)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def ruleset(self, ns: str, as_json: bool) -> str:
        if shutil.which("nft") is None:
            return ""
        done = run(
            ["nft", *(["-j"] if as_json else []), "list", "ruleset"],
            netns=ns,
            timeout=self.timeout,
            error=lambda why: StateError(f"cannot read nftables in namespace {ns}: {why}"),
        )
        return done.stdout


def _objects(ns: str, text: str) -> list[dict[str, Any]]:
    if not text.strip():
        return []
    try:
        data = json.loads(text)
        items = data["nftables"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise StateError(f"namespace {ns}: `nft -j list ruleset` printed no ruleset") from None
    return [item for item in items if isinstance(item, dict)]


def tables_of(ns: str, json_text: str, comments: dict[tuple[str, str], str]) -> tuple[
    list[Resource], set[str]
]:  # fmt: skip
    """The tables of `ns` (from its JSON ruleset): ours as Resources, and the foreign ids.

    `comments`: (family, table) -> comment, for the tables that have one.
    """
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for item in _objects(ns, json_text):
        if "table" in item:
            t = item["table"]
            counts.setdefault((t["family"], t["name"]), {})
        elif "chain" in item:
            c = item["chain"]
            counts.setdefault((c["family"], c["table"]), {}).setdefault(c["name"], 0)
        elif "rule" in item:
            r = item["rule"]
            chains = counts.setdefault((r["family"], r["table"]), {})
            chains[r["chain"]] = chains.get(r["chain"], 0) + 1
    ours: list[Resource] = []
    foreign: set[str] = set()
    for (family, name), chains in sorted(counts.items()):
        ident = format_id(NftId(ns, family, name))
        comment = comments.get((family, name), "")
        if not comment.startswith(MARK):
            foreign.add(ident)
            continue
        attrs = {"digest": comment[len(MARK) :], "rules": canonical_nft_rules(chains)}
        ours.append(Resource("nft", ident, attrs, parent=f"netns.{ns}"))
    return ours, foreign


def read_tables(ns: str, nft: Nft) -> tuple[list[Resource], set[str]]:
    """The tables of namespace `ns`: ours as Resources, and the ids of the others."""
    json_text = nft.ruleset(ns, as_json=True)
    if not any("table" in item for item in _objects(ns, json_text)):
        return [], set()
    comments = {
        (m.group(1), m.group(2)): m.group(3) for m in _COMMENT.finditer(nft.ruleset(ns, False))
    }
    return tables_of(ns, json_text, comments)
