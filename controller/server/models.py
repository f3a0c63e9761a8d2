"""The agent protocol's request and response bodies (DESIGN.md §4), as pydantic models.

Requests reject unknown fields and carry size limits on every string, number and list, so a bad
agent gets a 422 that names the field instead of filling the database. They are strict: a
boolean is `true` or `false` (never `0` or `"yes"`), an integer is a JSON integer (never `false`
or `1.0`), a time is an ISO 8601 string with a UTC offset (never a number), and floats are
finite. JSON keys are camelCase. `controller.server.errors.parse_body` reads them from bytes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,  # pydantic wants these on 3.11
    TypeVar,
)

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    with_config,
)
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict

from controller.core import applicability
from controller.core.observed import JobState
from controller.kinds.common import OsFamily
from controller.vocabularies import (
    DEVICE_NAME_PATTERN,
    LABEL_KEY_PATTERN,
    MACHINE_ID_PATTERN,
    MODULE_STREAM_PATTERN,
    PATCH_ID_PATTERN,
)

HOSTNAME_PATTERN = DEVICE_NAME_PATTERN  # the name the device is known by (vocabularies)

MAX_MISSING = 10_000
MAX_INSTALLED = 50_000
MAX_PACKAGES = 50_000
MAX_OUTPUT = 256 * 1024
# Integers are stored in 64-bit columns (or read by agents written in languages whose JSON
# numbers are doubles): larger ones are refused here rather than overflow the database.
MAX_INT = 2**63 - 1
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH = 2**31
MAX_EPOCH_TEXT = 16
MAX_FACT_TEXT = 2000

# Settings shared by every request model and patch-list TypedDict (see the module docstring).
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _storable(value: datetime) -> datetime:
    """Refuse times that cannot be converted to UTC or lie before 1970 (a wrong clock)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range once converted to UTC") from None
    if utc < MIN_TIME:
        raise ValueError("time before 1970-01-01T00:00:00Z (is the device clock set?)")
    return value


def _epoch(value: object) -> str | int:
    if isinstance(value, str) and len(value) <= MAX_EPOCH_TEXT:
        return value
    if type(value) is int and 0 <= value <= MAX_EPOCH:
        return value
    raise ValueError(
        f"expected a string of at most {MAX_EPOCH_TEXT} characters or an integer from 0 to "
        f"{MAX_EPOCH}"
    )


def _fact_value(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str) and len(value) <= MAX_FACT_TEXT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(
        f"expected a string of at most {MAX_FACT_TEXT} characters, a finite number, a boolean "
        "or null"
    )


# A union type names the member that failed in each error's location (`epoch.constrained-str`);
# these validate the union by hand so that errors name the request field alone.
Epoch = Annotated[
    str | int,
    PlainValidator(
        _epoch,
        json_schema_input_type=Annotated[str, Field(max_length=MAX_EPOCH_TEXT)]
        | Annotated[int, Field(ge=0, le=MAX_EPOCH)],
    ),
]
FactValue = Annotated[
    str | int | float | bool | None,
    PlainValidator(
        _fact_value,
        json_schema_input_type=Annotated[str, Field(max_length=MAX_FACT_TEXT)]
        | int
        | float
        | bool
        | None,
    ),
]
Time = Annotated[AwareDatetime, AfterValidator(_storable)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Text = Annotated[str, Field(max_length=500)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Hostname = Annotated[str, Field(pattern=HOSTNAME_PATTERN, max_length=253)]
PatchId = Annotated[str, Field(min_length=1, max_length=200, pattern=PATCH_ID_PATTERN)]
Labels = Annotated[
    dict[
        Annotated[str, Field(pattern=LABEL_KEY_PATTERN)],
        Annotated[str, Field(max_length=200)],
    ],
    # patternProperties alone lets any other key through a JSON Schema validator; the server
    # refuses them, and the document says so.
    Field(max_length=64, json_schema_extra={"additionalProperties": False}),
]
Secret = Annotated[str, Field(min_length=1, max_length=200)]
MachineId = Annotated[
    str,
    Field(
        pattern=MACHINE_ID_PATTERN,
        description="The machine's stable identity: `/etc/machine-id`, Windows `MachineGuid`.",
    ),
]


class Request(BaseModel):
    """Base of request bodies: camelCase keys only, unknown keys refused."""

    model_config = STRICT | ConfigDict(
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        frozen=True,
    )


class Response(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True, frozen=True
    )


class FieldProblem(Response):
    field: str = Field(description="The request field, e.g. `scan.missing[0].id`; empty: the body.")
    message: str


class ErrorBody(Response):
    """Every 4xx and 5xx answer (`controller.server.errors`)."""

    error: str = Field(description="A stable code for programs, e.g. `invalid-request`.")
    message: str = Field(description="A sentence for people; it names the field.")
    details: list[FieldProblem] | None = Field(
        default=None, description="Every field problem of a 400 or 422."
    )


# What each error status means, for the OpenAPI document; `error_responses` picks the ones an
# endpoint can answer (schemathesis fails the suite on an answer the document does not list).
ERROR_MEANINGS: dict[int, str] = {
    400: "Malformed request: the body is not standard JSON (RFC 8259: no NaN or Infinity), "
    "or the URL holds a NUL or control character.",
    401: "Missing, unknown, revoked or expired token.",
    403: "The token is of another kind, or does not reach this device or tenant.",
    404: "No such resource in the token's scope.",
    408: "The body did not arrive in time; the connection is closed.",
    409: "The transition is not allowed (e.g. the job already finished), or a name matches "
    "several objects (narrow it, e.g. with `tenant`).",
    413: "The body is larger than the limit.",
    415: "The body is not sent as `application/json`.",
    422: "Invalid body or parameter; the message names the field.",
    429: "Too many calls; retry after the `Retry-After` seconds.",
    503: "The service is stopping or its database is unreachable; retry later.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries of these error statuses, each an `ErrorBody`."""
    return {
        status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses
    }


class DeviceRole(StrEnum):
    SERVER = "server"
    WORKSTATION = "workstation"
    GATEWAY = "gateway"  # a Linux gateway is never patched


class OsInfo(Request):
    family: OsFamily = Field(description="`windows` or `linux`.")
    name: ShortText = Field(description="e.g. `Windows Server 2022`, `Ubuntu`, `Debian GNU/Linux`.")
    version: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="e.g. `10.0.20348`, `24.04`, `12`."
    )


class EnrollRequest(Request):
    enrollment_token: Secret = Field(description="The tenant's enrolment token.")
    hostname: Hostname = Field(description="The device's hostname; its name is the lowercase form.")
    os: OsInfo
    agent_version: Annotated[str, Field(min_length=1, max_length=64)]
    role: DeviceRole
    labels: Labels = Field(default_factory=dict)
    machine_id: MachineId | None = None
    replace_machine: bool = Field(
        default=False,
        description="This machine replaces the one enrolled under the hostname (another "
        "machine id): allowed, and raised as an IdentityConflict alert. Without it such an "
        "enrolment is refused with 409.",
    )


class EnrollResponse(Response):
    device_id: str
    device_token: str = Field(description="Shown once: the agent keeps it for every later call.")
    poll_interval: int = Field(description="Seconds between polls.")


class Facts(Request):
    """What the device says about itself; everything optional, unknown keys go in `custom`."""

    hostname: Hostname | None = None
    os: OsInfo | None = None
    role: DeviceRole | None = None
    labels: Labels | None = None
    agent_version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    machine_id: MachineId | None = None
    uptime: Count | None = Field(default=None, description="Seconds.")
    last_boot_at: Time | None = None
    kernel: Text | None = None
    os_build: Text | None = None
    domain: Text | None = None
    manufacturer: Text | None = None
    model: Text | None = None
    serial_number: Text | None = None
    timezone: Text | None = None
    ip_addresses: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=64)] = (
        Field(default_factory=list)
    )
    custom: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=64)], FactValue],
        Field(max_length=100),
    ] = Field(default_factory=dict, description="Site-specific facts.")


# The patch lists are TypedDicts, not models: a scan carries hundreds of entries, and pydantic
# validates plain dicts about a third faster than it builds model instances. Keys are the JSON
# keys (camelCase); unknown keys are refused all the same.
@with_config(STRICT)
class MissingPatch(TypedDict):
    """A patch the agent found missing; only `id` is required, the rest fills catalogue gaps."""

    id: PatchId
    title: NotRequired[Text | None]
    classification: NotRequired[Annotated[str, Field(max_length=64)] | None]
    severity: NotRequired[Annotated[str, Field(max_length=32)] | None]
    kb: NotRequired[Annotated[str, Field(max_length=32)] | None]
    cves: NotRequired[Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=500)]]
    sizeBytes: NotRequired[Count | None]


@with_config(STRICT)
class InstalledPatch(TypedDict):
    id: PatchId
    installedAt: NotRequired[Time | None]


_P = TypeVar("_P", MissingPatch, InstalledPatch)


class Scan(Request):
    scanned_at: Time = Field(description="When the agent scanned (with a UTC offset).")
    reboot_required: bool = Field(description="The OS signal that a reboot is pending.")
    missing: Annotated[list[MissingPatch], Field(max_length=MAX_MISSING)] = Field(
        default_factory=list
    )
    installed: Annotated[list[InstalledPatch], Field(max_length=MAX_INSTALLED)] = Field(
        default_factory=list
    )

    @field_validator("missing", "installed")
    @classmethod
    def _unique_ids(cls, entries: list[_P]) -> list[_P]:
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            patch_id = entry["id"]
            if patch_id in seen:
                raise ValueError(
                    f"patch id {patch_id!r} appears twice (entries {seen[patch_id]} and {index})"
                )
            seen[patch_id] = index
        return entries


class Package(Request):
    name: ShortText
    epoch: Epoch | None = None
    version: ShortText
    release: Annotated[str, Field(max_length=200)] | None = None
    arch: Annotated[str, Field(min_length=1, max_length=32)]
    source: Annotated[str, Field(max_length=200)] | None = Field(
        default=None,
        description=(
            "The source package the binary was built from, as dpkg prints it: `inetutils` or "
            "`inetutils (2:2.4-2+deb12u3)` when the source's version differs from the binary's "
            "(dpkg-query `${source:Package} (${source:Version})`); rpm agents give the name."
        ),
    )

    @field_validator("source")
    @classmethod
    def _dpkg_source(cls, value: str | None) -> str | None:
        # Advisories that name source packages are judged by this version: refuse what would
        # be read as another package or version rather than guess.
        applicability.parse_source(value)
        return value


ModuleStream = Annotated[
    str,
    Field(
        max_length=200,
        pattern=MODULE_STREAM_PATTERN,
        examples=["php:7.4"],
    ),
]


class WindowsOs(Request):
    """What a Windows device runs, as the registry key `HKLM\\SOFTWARE\\Microsoft\\Windows NT\\
    CurrentVersion` and the processor architecture say; used to pick the KBs of the device's own
    product and update channel from Microsoft's monthly documents."""

    product_name: ShortText | None = Field(
        default=None, description="`ProductName`: `Windows Server 2022 Datacenter`."
    )
    installation_type: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="`InstallationType`: `Client`, `Server` or `Server Core`."
    )
    edition_id: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="`EditionID`: `ServerDatacenter`, `Enterprise`, ..."
    )
    display_version: Annotated[str, Field(max_length=32)] | None = Field(
        default=None, description="`DisplayVersion` (`21H2`), or `ReleaseId` (`1809`) before it."
    )
    architecture: Annotated[str, Field(max_length=32)] | None = Field(
        default=None, description="`PROCESSOR_ARCHITECTURE`: `AMD64`, `ARM64` or `x86`."
    )
    hotpatch_enrolled: bool = Field(
        default=False,
        description="The device takes hotpatches (Windows Server Azure Edition, or Windows "
        "Server 2025 / Windows 11 Enterprise enrolled in a hotpatch policy): remediations of "
        "SubType `AzureHotpatch` apply to it, in place of the month's security update.",
    )


class Inventory(Request):
    os_build: Text | None = None
    kernel: Text | None = None
    packages: Annotated[list[Package], Field(max_length=MAX_PACKAGES)] = Field(default_factory=list)
    module_streams: Annotated[list[ModuleStream], Field(max_length=500)] | None = Field(
        default=None,
        description=(
            "RHEL family: the enabled module streams as `name:stream` (`php:7.4`; dnf's "
            "`/etc/dnf/modules.d/*.module` files, `dnf module list --enabled`); `[]` when none "
            "is enabled. Advisories for another stream of a listed module are not judged "
            "against this host. Omitted: the `.module+el…`/`.module_el…` marker of each "
            "package's release decides (modular builds update modular packages)."
        ),
    )

    windows: WindowsOs | None = Field(
        default=None,
        description="Windows: the OS the device runs (product, installation type, architecture, "
        "hotpatch enrolment). Without it every product of the build line counts and the "
        "standard channel applies.",
    )

    @field_validator("module_streams")
    @classmethod
    def _one_stream_per_module(cls, streams: list[str] | None) -> list[str] | None:
        # dnf enables one stream per module; two would make the answer depend on order.
        seen: dict[str, str] = {}
        for stream in streams or []:
            name = stream.split(":", 1)[0]
            if name in seen and seen[name] != stream:
                msg = f"module {name!r} has two enabled streams: {seen[name]!r}, {stream!r}"
                raise ValueError(msg)
            seen[name] = stream
        return streams


class ReportRequest(Request):
    """Every report is a heartbeat; facts, a scan and the package inventory are optional."""

    facts: Facts | None = None
    scan: Scan | None = None
    inventory: Inventory | None = None

    @field_validator("scan")
    @classmethod
    def _missing_or_installed(cls, scan: Scan | None) -> Scan | None:
        if scan is not None:
            both = {p["id"] for p in scan.missing} & {p["id"] for p in scan.installed}
            if both:
                raise ValueError(f"patch ids both missing and installed: {sorted(both)[:5]}")
        return scan


class ReportResponse(Response):
    accepted: bool
    scan: Literal["none", "stored", "duplicate", "stale"] = Field(
        description="What happened to the scan: stored, or ignored as a replay or an older one."
    )
    poll_interval: int
    server_time: datetime


class AgentJob(Response):
    id: str
    kind: Literal["scan", "install", "script"]
    patches: list[str]
    reboot: str | None = Field(description="never | if-required | always (install jobs).")
    scripts: dict[str, object] = Field(description="Scripts by role (pre, post, run), pinned.")
    deadline: datetime | None
    revision: str
    window_key: str | None
    payload: dict[str, object]


class JobsResponse(Response):
    jobs: list[AgentJob]
    poll_interval: int


AgentState = Literal["acked", "downloading", "installing", "rebooting", "succeeded", "failed"]


class PatchResult(Request):
    id: PatchId
    result: Literal["installed", "failed", "skipped", "not-applicable"]
    reason: Annotated[str, Field(max_length=2000)] | None = None


class JobEventRequest(Request):
    state: AgentState
    seq: Count | None = Field(
        default=None, description="Optional event number; without it the content is the key."
    )
    patches: Annotated[list[PatchResult], Field(max_length=MAX_MISSING)] = Field(
        default_factory=list
    )
    reboot_required: bool | None = None
    output: Annotated[str, Field(max_length=MAX_OUTPUT)] | None = None

    @property
    def job_state(self) -> JobState:
        return JobState(self.state)


class JobEventResponse(Response):
    job_id: str
    state: str
    status: Literal["applied", "progress", "duplicate"]
