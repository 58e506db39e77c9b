"""The errors of hercc.resources, in one place.

    OperationError (hercc.diagnostics)
    ├── InvalidValue    a key, endpoint or allowed IP that has no canonical form
    └── MalformedId     a resource id without its kind's shape

Messages never contain private or preshared keys.
"""

from __future__ import annotations

from hercc.diagnostics import OperationError


class InvalidValue(OperationError):
    """A key, endpoint or allowed IP that has no canonical form."""


class MalformedId(OperationError):
    """A resource id without the shape of its kind (resources/ids.py)."""
