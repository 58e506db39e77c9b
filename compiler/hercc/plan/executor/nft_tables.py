"""The executor's nft kind: an nftables table in a namespace, loaded whole.

Where the ruleset comes from. A resource's attributes are what the differ
compares (the digest of the ruleset and its rules per chain), so the text
itself travels beside them, in the desired resource's `content`
(resources/model.py): never compared, kept in saved plans, so a plan is
applied exactly as it was made, with no IR at hand. A live resource has no
content; what an undo needs of the live table it replaced or deleted is
read with `nft list table` first and kept in memory (like a private key).

  create   `nft -c -f -` (a check: nothing changes when the ruleset is
           rejected), then `nft -f -`, in the resource's namespace. The
           ruleset starts with `table F T` + `delete table F T`, so loading
           it replaces the table whole, atomically.
  update   the same: the file replaces the table. The table as it was is
           kept for the undo (whose `after` is the live resource).
  delete   `nft delete table F T`; the Restore loads the table as it was.
"""

from __future__ import annotations

from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.system import System
from hercc.resources.errors import MalformedId
from hercc.resources.ids import NftId
from hercc.resources.model import Resource

__all__ = ["NftTables"]


def _replacing(family: str, table: str, listed: str) -> str:
    """A listed table as a ruleset that replaces the table whole, whether it exists or not."""
    return f"table {family} {table}\ndelete table {family} {table}\n{listed}"


class NftTables:
    """Creates, replaces and deletes nft tables through the System boundary."""

    def __init__(self, system: System) -> None:
        self.sys = system
        self._was: dict[str, str] = {}  # address -> the table as it was before we loaded one

    def _id(self, r: Resource) -> NftId:
        try:
            return r.id_as(NftId)
        except MalformedId:
            raise ExecutorError(f"malformed resource id {r.address}") from None

    def _load(self, ns: str, ruleset: str) -> None:
        self.sys.nft(ns, ["-c", "-f", "-"], ruleset)
        self.sys.nft(ns, ["-f", "-"], ruleset)

    def _listed(self, rid: NftId) -> str:
        listed = self.sys.nft(rid.ns, ["list", "table", rid.family, rid.table])
        return _replacing(rid.family, rid.table, listed)

    def _ruleset(self, r: Resource) -> str:
        if r.content is not None:
            return r.content
        if r.address in self._was:
            return self._was[r.address]
        raise ExecutorError(f"{r.address}: no ruleset to load (the plan holds none)")

    def create(self, r: Resource) -> None:
        self._load(self._id(r).ns, self._ruleset(r))

    def update(self, r: Resource) -> None:
        rid = self._id(r)
        ruleset = self._ruleset(r)
        self._was[r.address] = self._listed(rid)
        self._load(rid.ns, ruleset)

    def delete(self, r: Resource) -> Restore:
        rid = self._id(r)
        was = self._listed(rid)
        self.sys.nft(rid.ns, ["delete", "table", rid.family, rid.table])
        return lambda: self._load(rid.ns, was)
