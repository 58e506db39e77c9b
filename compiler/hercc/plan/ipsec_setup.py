"""What the node service needs for a node's IPsec links: its charon and their secrets.

`IpsecSetup` says where the node's charon listens (its VICI socket:
state/ipsec.py's DEFAULT_VICI on a real node, the lab's per node) and where
the links' secrets come from (`--secrets FILE`, else HERC_SECRET_<NAME>:
passes/secrets.py). The secrets are resolved when a node is planned, so that
a missing one (or a private key that is not its certificate's) fails the
plan, and again when it is applied, into the executor's memory only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hercc.diagnostics import OperationError
from hercc.passes.secrets import resolve
from hercc.plan.desired_ipsec import secret_names
from hercc.plan.diff import Plan
from hercc.plan.executor.ipsec import IpsecExecutor
from hercc.resources.ipsec import IpsecContent, key_matches
from hercc.resources.model import Resource, State
from hercc.state.ipsec import DEFAULT_VICI, IpsecQuery, IpsecRecord, Vici, record_file

__all__ = ["IpsecSetup", "ipsec_executor", "ipsec_query"]


@dataclass(frozen=True)
class IpsecSetup:
    """Where the node's charon listens, and where its IPsec links' secrets come from."""

    vici: str = DEFAULT_VICI
    secrets_file: str | None = None  # --secrets FILE; HERC_SECRET_<NAME> either way

    def secrets(self, resources: Iterable[Resource]) -> dict[str, str]:
        """The values of the secrets `resources` load; OperationError names any missing one,
        and any private key that is not its certificate's (never showing the key)."""
        chosen = list(resources)
        names = secret_names(chosen)
        values = resolve(names, self.secrets_file, os.environ) if names else {}
        for r in chosen:
            c = IpsecContent.from_text(r.content) if r.kind == "ipsec" and r.content else None
            if c is not None and c.cert is not None and not key_matches(values[c.secret], c.cert):
                raise OperationError(
                    f"ipsec.{c.connection}: secret {c.secret!r} is not the private key of its "
                    "certificate (an unencrypted PEM key whose public half the certificate holds)"
                )
        return values


def ipsec_query(
    vici: Vici | None, state_dir: str | Path | None, node: str, desired: State
) -> IpsecQuery | None:
    """What to read of charon: only when the plan wants connections or the node recorded some."""
    if vici is None or state_dir is None:
        return None
    record = IpsecRecord(record_file(state_dir, node))
    if any(r.kind == "ipsec" for r in desired.values()) or record.load():
        return IpsecQuery(vici, record)
    return None


def ipsec_executor(
    plan: Plan, vici: Vici, setup: IpsecSetup, state_dir: str | Path, node: str
) -> IpsecExecutor | None:
    """The executor of the plan's `ipsec` changes, with the secrets they load; None without any."""
    if not any(c.resource.kind == "ipsec" for c in plan.changes):
        return None
    loads = [c.after for c in plan.changes if c.after is not None]
    return IpsecExecutor(vici, IpsecRecord(record_file(state_dir, node)), setup.secrets(loads))
