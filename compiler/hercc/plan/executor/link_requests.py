"""Netlink link requests by interface name, as pyroute2 takes them (by index).

The executor's L2 kinds (plan/executor/l2_links.py) say what they want as a
request naming interfaces; `LinuxSystem.link` turns it into pyroute2's
arguments with `link_kwargs`, looking the names up in the namespace. Kept
apart, so both sides are tested without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["link_kwargs"]

_BY_NAME = ("link", "master", "vxlan_link")  # request fields that name an interface


def link_kwargs(
    command: str, request: Mapping[str, Any], index_of: Callable[[str], int]
) -> dict[str, Any]:
    """pyroute2 `link(command, **kwargs)` for `request`: names to indexes, master None to 0
    (nomaster); a new link keeps its `ifname`, an existing one is found by `index`."""
    out: dict[str, Any] = {}
    for key, value in request.items():
        if key == "ifname" and command != "add":
            out["index"] = index_of(value)
        elif key == "master" and value is None:
            out["master"] = 0
        elif key in _BY_NAME:
            out[key] = index_of(value)
        else:
            out[key] = value
    return out
