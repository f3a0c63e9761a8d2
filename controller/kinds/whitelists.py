"""Whitelist: patches approved for many devices at once."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from controller.kinds.common import Classification, Document, Model, PatchId, Severity, Targets


class WhitelistEntry(Model):
    """Either one explicit patch id, or a filter (Windows only: see DESIGN.md 3.2)."""

    id: PatchId | None = Field(
        default=None, description="An explicit patch id: a bulk manual approval, any OS."
    )
    classifications: tuple[Classification, ...] = Field(
        default=(), description="Filter: classifications matched (Windows auto-approval only)."
    )
    severities: tuple[Severity, ...] = Field(
        default=(), description="Filter: severities matched (Windows auto-approval only)."
    )
    vendors: tuple[str, ...] = Field(
        default=(), description="Filter: vendors matched, case-insensitive (e.g. `microsoft`)."
    )
    products: tuple[str, ...] = Field(
        default=(), description="Filter: glob patterns on the product."
    )

    @model_validator(mode="after")
    def _id_or_filter(self) -> Self:
        has_filter = bool(self.classifications or self.severities or self.vendors or self.products)
        if self.id is not None and has_filter:
            raise ValueError("an entry is either an `id` or a filter, not both")
        if self.id is None and not has_filter:
            raise ValueError("an entry needs an `id` or at least one filter field")
        return self

    @property
    def is_filter(self) -> bool:
        return self.id is None


class WhitelistSpec(Model):
    targets: Targets = Field(description="Devices this whitelist approves patches for.")
    patches: tuple[WhitelistEntry, ...] = Field(
        min_length=1, description="Explicit ids and (Windows) filters."
    )


class Whitelist(Document):
    """Patches approved globally for the targeted devices."""

    KIND: ClassVar[str] = "Whitelist"
    kind: Literal["Whitelist"] = Field(description="Always `Whitelist`.")
    spec: WhitelistSpec = Field(description="Targets and patch entries.")

    def explicit_ids(self) -> frozenset[str]:
        return frozenset(entry.id for entry in self.spec.patches if entry.id is not None)

    def filters(self) -> tuple[WhitelistEntry, ...]:
        return tuple(entry for entry in self.spec.patches if entry.is_filter)
