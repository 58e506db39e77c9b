"""IpsecExecutor: a node's IPsec connections loaded into charon over VICI, for the `ipsec` kind.

SystemExecutor hands it the `ipsec` resources. A desired resource brings its
connection as content (resources/ipsec.py: the swanctl.conf tree, the name of
its secret and the remote's id); the key itself is joined only here, from
the values the node service resolved at apply time (`secrets`, memory only).
Every connection loaded is recorded in the node's IpsecRecord
(state/ipsec.py), which also keeps what an undo needs: a live resource
carries no content.

  create  `load-shared` (the PSK, id `ike-<connection>`, owned by the remote's id), or
          with certificates `load-key` (the private key, checked first to be the
          certificate's); `load-conn` (without start_action: the initiate is ours; the
          certificates in it as PEM, as swanctl sends them), recorded; then
          `initiate` of its CHILD_SA, waited for: a tunnel that does not come up
          fails the apply (which rolls back).
  update  `child` alone: `initiate`. Anything else: load key and connection again
          (charon replaces one of the same name), `terminate` the IKE_SA that runs
          the old one, `initiate`. An old private key stays loaded: the undo, which
          loads the old certificate, needs it while the secret is the new key.
  delete  `terminate` its IKE_SA (and so its CHILD_SAs), `unload-conn`,
          `unload-shared` (`unload-key` unless another recorded connection uses it),
          unrecorded; the Restore loads it again.

Messages never carry the key outside the `load-shared` call, and errors name
the connection, never the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError, SecretUnavailable
from hercc.resources.ipsec import IpsecContent, key_id, key_matches, shared_id
from hercc.resources.model import Resource
from hercc.state.ipsec import IpsecRecord, Vici, ViciError

__all__ = ["IpsecExecutor"]

INITIATE_MS = 10000  # how long an initiate waits for the CHILD_SA
TERMINATE_MS = 3000


def _initiated_here(c: IpsecContent) -> dict[str, Any]:
    """The tree without the CHILD_SA's start_action: loaded over VICI, the initiate below
    starts it, once, and waits for it (start_action = start would start a second IKE_SA)."""
    children = {
        name: {k: v for k, v in child.items() if k != "start_action"}
        for name, child in c.tree["children"].items()
    }
    tree = {**c.tree, "children": children}
    if c.certs:  # file names (swanctl.conf's) -> the certificates themselves
        local, remote = c.tree["local"], c.tree["remote"]
        certs = [c.certs[f"x509/{n}"] for n in local["certs"]]
        cacerts = [c.certs[f"x509ca/{n}"] for n in remote["cacerts"]]
        tree |= {"local": {**local, "certs": certs}, "remote": {**remote, "cacerts": cacerts}}
    return tree


class IpsecExecutor:
    """The `ipsec` kind on one node's charon (see the module docstring)."""

    def __init__(self, vici: Vici, record: IpsecRecord, secrets: Mapping[str, str]) -> None:
        self.vici = vici
        self.record = record
        self.secrets = secrets
        self._loaded: dict[str, IpsecContent] = {}  # what was replaced or removed: for undos

    def _content(self, r: Resource) -> IpsecContent:
        if r.content is not None:
            return IpsecContent.from_text(r.content)
        known = self._loaded.get(r.id) or self.record.load().get(r.id)
        if known is None:
            raise ExecutorError(f"{r.address}: what to load is not known (plan again)")
        return known

    def _load(self, c: IpsecContent) -> None:
        key = self.secrets.get(c.secret)
        if key is None:
            raise SecretUnavailable(
                f"ipsec.{c.connection}: secret {c.secret!r} was not resolved "
                "(pass --secrets FILE or set its HERC_SECRET_ variable)"
            )
        if c.cert is not None:
            if key_matches(key, c.cert):
                self.vici.request("load-key", {"type": "any", "data": key})
            elif key_id(c.cert) not in set(self.vici.request("get-keys").get("keys") or ()):
                # (an undo loads the old certificate while the secret is the new key: the
                # old key is still in charon then, as an update never unloads it)
                raise SecretUnavailable(
                    f"ipsec.{c.connection}: secret {c.secret!r} is not the private key of its "
                    "certificate (an unencrypted PEM key whose public half the certificate holds)"
                )
        else:
            shared = {
                "id": shared_id(c.connection),
                "type": "IKE",
                "data": key,
                "owners": [c.remote_id],
            }
            self.vici.request("load-shared", shared)
        self.vici.request("load-conn", {c.connection: _initiated_here(c)})
        self.record.add(c)

    def _unload_key(self, c: IpsecContent) -> None:
        """The connection's private key, unless another recorded connection loads it too."""
        if c.cert is None:
            return
        kid = key_id(c.cert)
        others = self.record.load().values()
        if not any(o.cert is not None and key_id(o.cert) == kid for o in others):
            with contextlib.suppress(ViciError):
                self.vici.request("unload-key", {"id": kid})

    def _initiate(self, name: str) -> None:
        message = {"child": name, "ike": name, "timeout": str(INITIATE_MS)}
        try:
            self.vici.stream("initiate", "control-log", message)
        except ViciError as exc:
            raise ExecutorError(f"ipsec.{name}: the tunnel did not come up: {exc}") from None

    def _terminate(self, name: str) -> None:
        with contextlib.suppress(ViciError):  # no SA to end is fine
            self.vici.stream(
                "terminate", "control-log", {"ike": name, "timeout": str(TERMINATE_MS)}
            )

    def create(self, r: Resource) -> None:
        self._load(self._content(r))
        self._initiate(r.id)

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        content = self._content(after)
        if set(changed) - {"child"}:
            old = self.record.load().get(after.id)
            if old is not None:
                self._loaded.setdefault(after.id, old)
            self._load(content)
            self._terminate(after.id)
        self._initiate(after.id)

    def delete(self, r: Resource) -> Restore:
        content = self._loaded.get(r.id) or self.record.load().get(r.id)
        self._terminate(r.id)
        with contextlib.suppress(ViciError):  # already gone
            self.vici.request("unload-conn", {"name": r.id})
        with contextlib.suppress(ViciError):
            self.vici.request("unload-shared", {"id": shared_id(r.id)})
        self.record.remove(r.id)
        if content is not None:
            self._unload_key(content)
            self._loaded[r.id] = content

        def restore() -> None:
            if content is None:
                raise ExecutorError(f"{r.address}: cannot be loaded again (it was not recorded)")
            self.create(replace(r, content=content.to_text()))

        return restore
