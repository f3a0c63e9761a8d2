"""Tenant: a partner (e.g. an MSP) and its clients."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import TENANT_KIND, Document, Model, Name


class TenantSpec(Model):
    display_name: str | None = Field(default=None, description="Human-readable name.")
    clients: tuple[Name, ...] = Field(
        default=(), description="Client names; each becomes the tenant path `partner/client`."
    )


class Tenant(Document):
    """A partner; `metadata.name` is the partner's tenant path."""

    KIND: ClassVar[str] = TENANT_KIND
    kind: Literal["Tenant"] = Field(description="Always `Tenant`.")
    spec: TenantSpec = Field(default_factory=TenantSpec, description="Display name and clients.")

    def paths(self) -> tuple[str, ...]:
        """The partner's own path and one per client."""
        return (self.name, *(f"{self.name}/{client}" for client in self.spec.clients))
