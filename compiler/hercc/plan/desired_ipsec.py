"""The desired state of a node's IPsec links (called by plan/desired.py), and their secrets' names.

Per `ipsec` link of the node (backends/swanctl.py `connections`: the same
tree its swanctl.conf is written from):

  ipsec  <enterprise>-<ipsec>: attrs and content as resources/ipsec.py says;
         the content names the link's secret, whose value the node service
         resolves at plan and apply time (passes/secrets.py) and hands only
         to the executor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hercc import ir
from hercc.backends.swanctl import cert_files, connections, remote_id
from hercc.resources.ipsec import IpsecContent, ipsec_resource
from hercc.resources.model import Resource


def ipsec_resources(model: ir.IR, node: ir.Node) -> Iterator[Resource]:
    for name, link, tree in connections(model, node):
        content = IpsecContent(name, tree, link.secret, remote_id(link), cert_files(name, link))
        yield ipsec_resource(content)


def secret_names(resources: Iterable[Resource]) -> list[str]:
    """The secrets the `ipsec` resources among `resources` load, each once, sorted."""
    names = {
        IpsecContent.from_text(r.content).secret
        for r in resources
        if r.kind == "ipsec" and r.content is not None
    }
    return sorted(names)
