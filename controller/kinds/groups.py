"""DeviceGroup: a named set of devices, listed and/or selected by facts."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import DeviceName, Document, Model, Selector


class DeviceGroupSpec(Model):
    devices: tuple[DeviceName, ...] = Field(
        default=(), description="Device names (host names, case-insensitive) in the group."
    )
    selector: Selector | None = Field(
        default=None, description="Devices whose facts match are members too."
    )


class DeviceGroup(Document):
    """Devices of the group's tenant (and its clients) that are listed or match the selector."""

    KIND: ClassVar[str] = "DeviceGroup"
    kind: Literal["DeviceGroup"] = Field(description="Always `DeviceGroup`.")
    spec: DeviceGroupSpec = Field(description="Listed devices and a selector.")
