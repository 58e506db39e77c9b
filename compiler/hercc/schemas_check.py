"""Validation of what hercc writes against the JSON Schemas in schemas/."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator


class SchemaViolation(Exception):
    """hercc produced data its own schema rejects: a bug in hercc, never in the spec."""


@cache
def validator(name: str) -> Draft202012Validator:
    text = resources.files("hercc").joinpath(f"schemas/{name}").read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_ir(data: Any) -> None:
    errors = sorted(
        validator("ir.schema.json").iter_errors(data), key=lambda e: list(e.absolute_path)
    )
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path)
        raise SchemaViolation(
            f"ir.json fails schemas/ir.schema.json at /{where}: {errors[0].message}"
        )
