"""What a plan does to a resource: `Action`, and its symbol as Terraform prints it.

The value of an action is its name in JSON (plans, saved plans, `--json`).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Action"]


class Action(Enum):
    CREATE = "create"
    UPDATE = "update"  # in place
    DELETE = "delete"
    REPLACE = "replace"  # delete, then create

    @property
    def symbol(self) -> str:
        """`+` create, `~` update in place, `-` delete, `-/+` replace."""
        return _SYMBOLS[self]


_SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.REPLACE: "-/+"}
