"""JSON Schemas of the policy kinds, generated from the pydantic models."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from controller.kinds import KINDS
from controller.kinds.common import format_duration

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ALL_KINDS_FILE = "all.schema.json"


def file_name(kind: str) -> str:
    """`PatchWindow` → `patch-window.schema.json`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() + ".schema.json"


class _PolicySchema(GenerateJsonSchema):
    """Defaults written as a policy file writes them: a duration as `4h`, not the ISO 8601
    `PT4H` pydantic would write, which the duration's own `pattern` refuses (an editor showed
    the default as invalid)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def kind_schema(kind: str) -> dict[str, Any]:
    schema = KINDS[kind].model_json_schema(
        by_alias=True, mode="validation", schema_generator=_PolicySchema
    )
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
