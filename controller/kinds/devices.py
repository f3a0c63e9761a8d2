"""Device: optional declared labels for an agent-enrolled device."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import DeviceName, Document, Metadata, Model


class DeviceMetadata(Metadata):
    """A Device's identity: its name is the host name the agent enrols with."""

    name: DeviceName = Field(
        description="The device's host name (`web-01`, `realhost.example.org`), "
        "case-insensitive; unique per tenant."
    )


class DeviceSpec(Model):
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels merged over the ones the agent reports (these win).",
    )


class Device(Document):
    """Declared facts for a device the agent enrols under this name and tenant."""

    KIND: ClassVar[str] = "Device"
    kind: Literal["Device"] = Field(description="Always `Device`.")
    metadata: DeviceMetadata = Field(description="Name (the host name), tenant, labels.")
    spec: DeviceSpec = Field(default_factory=DeviceSpec, description="Declared labels.")
