"""JSON Schemas of the policy kinds, generated from the pydantic models."""

from __future__ import annotations

import json
import re
from typing import Any

from controller.kinds import KINDS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ALL_KINDS_FILE = "all.schema.json"


def file_name(kind: str) -> str:
    """`PatchWindow` → `patch-window.schema.json`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() + ".schema.json"


def kind_schema(kind: str) -> dict[str, Any]:
    schema = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": file_name(kind), **schema}


def all_kinds_schema() -> dict[str, Any]:
    """One schema for files that mix kinds: each document must match the schema of its kind."""
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": ALL_KINDS_FILE,
        "title": "patchctl policy document",
        "oneOf": [{"$ref": file_name(kind)} for kind in sorted(KINDS)],
    }


def render_all() -> dict[str, str]:
    """File name → JSON text for every schema, as committed under schemas/."""
    rendered = {file_name(kind): _dump(kind_schema(kind)) for kind in sorted(KINDS)}
    rendered[ALL_KINDS_FILE] = _dump(all_kinds_schema())
    return rendered


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
