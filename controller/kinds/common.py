"""Building blocks shared by every policy kind: the envelope, targets and value types.

Purely declarative: these models validate values and say what they mean; they read no files,
no clock and no network.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from controller.vocabularies import (
    COUNT_OR_PERCENT_PATTERN,
    DURATION_PATTERN,
    MAILBOX_PATTERN,
    PATCH_ID_PATTERN,
    POSITIVE_DURATION_PATTERN,
)

# Defined in the light `controller.vocabularies` (the command line checks --tenant and lists --os
# without pydantic); re-exported (`as`), so the kinds and their importers keep using them here.
from controller.vocabularies import DEVICE_NAME_PATTERN as DEVICE_NAME_PATTERN  # noqa: PLC0414
from controller.vocabularies import NAME_PATTERN as NAME_PATTERN  # noqa: PLC0414
from controller.vocabularies import TENANT_PATTERN as TENANT_PATTERN  # noqa: PLC0414
from controller.vocabularies import OsFamily as OsFamily  # noqa: PLC0414

API_VERSION = "patchctl/v1"


class Model(BaseModel):
    """Base of every policy model: frozen, unknown fields rejected, camelCase in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
    )


def independent_errors(errors: Sequence[Any]) -> list[Any]:
    """Pydantic's errors (`ValidationError.errors()` dicts) without those that only follow
    from another: pydantic checks a tuple's `min_length` on the items that validated, so
    `patches: [123]` is also "at least 1 item" although one was written. A `too_short` is
    kept when the input itself is shorter than the minimum. Purely computational."""
    failed = [tuple(error.get("loc", ())) for error in errors]

    def follows(error: Any) -> bool:
        loc, given = tuple(error.get("loc", ())), error.get("input")
        minimum = (error.get("ctx") or {}).get("min_length", 0)
        return (
            error.get("type") == "too_short"
            and isinstance(given, Sized)
            and len(given) >= minimum
            and any(len(other) > len(loc) and other[: len(loc)] == loc for other in failed)
        )

    return [error for error in errors if not follows(error)]


# --- vocabularies ---------------------------------------------------------------------------


class Classification(StrEnum):
    SECURITY = "security"
    CRITICAL = "critical"
    BUGFIX = "bugfix"
    ENHANCEMENT = "enhancement"
    FEATURE = "feature"
    DEFINITION = "definition"
    DRIVER = "driver"
    ROLLUP = "rollup"
    SERVICE_PACK = "service-pack"
    TOOL = "tool"
    UPDATE = "update"
    OTHER = "other"


class Severity(StrEnum):
    """Patch severity, lowest last. Vendor synonyms are folded by `Severity.parse`."""

    CRITICAL = "critical"
    IMPORTANT = "important"
    MODERATE = "moderate"
    LOW = "low"
    UNSPECIFIED = "unspecified"

    @classmethod
    def parse(cls, text: str | None) -> Severity:
        """Map a vendor's word (High, Medium, Negligible, ...) to our scale."""
        if not text:
            return cls.UNSPECIFIED
        word = text.strip().lower()
        return _SEVERITY_SYNONYMS.get(word, cls.UNSPECIFIED)


_SEVERITY_SYNONYMS: dict[str, Severity] = {
    "critical": Severity.CRITICAL,
    "urgent": Severity.CRITICAL,
    "important": Severity.IMPORTANT,
    "high": Severity.IMPORTANT,
    "moderate": Severity.MODERATE,
    "medium": Severity.MODERATE,
    "low": Severity.LOW,
    "negligible": Severity.LOW,
    "unimportant": Severity.LOW,
    "unspecified": Severity.UNSPECIFIED,
    "none": Severity.UNSPECIFIED,
}


# --- value types ----------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = ("weeks", "days", "hours", "minutes", "seconds")
# Longer is a typo, and a time plus it would leave the calendar datetime can hold (year 9999).
MAX_DURATION = timedelta(days=36525)


def parse_duration(value: Any) -> timedelta:
    """Parse `90s`, `15m`, `4h`, `7d`, `2w` or combinations such as `1h30m`, at most
    `MAX_DURATION` (100 years, `36525d`).

    Raises ValueError quoting the value: not a duration, or longer than 100 years."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 90s, 4h or 7d, got {value!r}")  # noqa: TRY004
    match = _DURATION_RE.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"{value!r} is not a duration such as 90s, 15m, 4h, 7d or 1h30m")
    try:
        parts = {unit: int(n) for unit, n in zip(_DURATION_UNITS, match.groups(), strict=True) if n}
        duration = timedelta(**parts)
    except (OverflowError, ValueError):  # beyond timedelta, or more digits than int() reads
        duration = None
    if duration is None or duration > MAX_DURATION:
        raise ValueError(f"{value!r} is longer than 100 years (36525d)")
    return duration


def format_duration(value: timedelta) -> str:
    """The shortest `parse_duration` spelling of a duration."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def check_positive_duration(value: timedelta) -> timedelta:
    """The duration, or ValueError when it is 0s: an interval, a length or a time limit of
    nothing is never meant (a zero interval would repeat at every pass; the agent reads a zero
    script timeout as "use my default"). The one rule of policy fields and command-line
    options."""
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["90s", "4h", "7d"]}
    ),
]
"""A duration that may be 0s: a grace period, a soak, a cutoff."""

PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(check_positive_duration),
    PlainSerializer(format_duration, return_type=str),
    # A digit other than 0 somewhere: `0s`, `0h0m` and `00d` are the zero durations.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": POSITIVE_DURATION_PATTERN,
            "examples": ["90s", "4h", "7d"],
        }
    ),
]
"""A duration longer than 0s: an interval, a length, a time limit."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """An absolute count or a percentage of a population (`10%` or `5`)."""

    value: float
    percent: bool

    def of(self, total: int) -> int:
        """The count allowed out of `total`; a percentage of a non-empty set is at least 1."""
        if not self.percent:
            return int(self.value)
        if total <= 0:
            return 0
        return max(1, int(total * self.value / 100))

    def __str__(self) -> str:
        number = f"{self.value:g}"
        return f"{number}%" if self.percent else number


def parse_quantity(value: Any) -> Quantity:
    if isinstance(value, Quantity):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a count or a percentage such as 10%, got {value!r}")  # noqa: TRY004
    if isinstance(value, int) and value >= 0:
        return Quantity(value, percent=False)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return Quantity(int(text), percent=False)
        if re.fullmatch(r"\d+(\.\d+)?%", text) and float(text[:-1]) <= 100:
            return Quantity(float(text[:-1]), percent=True)
    raise ValueError(f"{value!r} is not a count or a percentage between 0% and 100%")


CountOrPercent = Annotated[
    Quantity,
    BeforeValidator(parse_quantity),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": COUNT_OR_PERCENT_PATTERN},
            ],
            "examples": ["10%", 5],
        }
    ),
]


def check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    # OSError: a name that is a folder of the time zone database (`Europe`) or too long a path
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{value!r} is not an IANA time zone such as Europe/Berlin or UTC"
        ) from None
    return value


TimeZone = Annotated[
    str,
    AfterValidator(check_time_zone),
    WithJsonSchema({"type": "string", "examples": ["Europe/Berlin", "UTC"]}),
]


def check_cron(value: str) -> str:
    from datetime import datetime  # noqa: PLC0415 - only a reference instant, never "now"

    if len(value.split()) != 5:
        raise ValueError(
            f"{value!r} is not a 5-field cron expression (minute hour day month weekday)"
        )
    try:
        CronSim(value, datetime(2000, 1, 1))  # noqa: DTZ001
    except CronSimError as exc:
        raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from None
    return value


CronExpression = Annotated[
    str,
    AfterValidator(check_cron),
    WithJsonSchema({"type": "string", "examples": ["0 2 * * SUN"]}),
]

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]

MAX_EMAIL_ADDRESS = 254  # RFC 5321; the form: `vocabularies.MAILBOX_PATTERN`


def check_email_address(value: str) -> str:
    """The mailbox (`ops@example.com`, or `Ops <ops@example.com>` as earlier versions took
    it), or ValueError quoting it: the one rule of Notification recipients and the server's
    `[smtp] from`. The address itself is at most 254 characters (RFC 5321)."""
    if not re.fullmatch(MAILBOX_PATTERN, value) or len(address_of(value)) > MAX_EMAIL_ADDRESS:
        raise ValueError(f"{value!r} is not an email address")
    return value


def address_of(mailbox: str) -> str:
    """The bare address of a mailbox `check_email_address` took (`Ops <ops@x>` -> `ops@x`)."""
    return mailbox.rsplit("<", 1)[-1].rstrip(">") if mailbox.endswith(">") else mailbox


EmailAddress = Annotated[
    str,
    AfterValidator(check_email_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MAILBOX_PATTERN,
            "examples": ["ops@example.com", "Ops <ops@example.com>"],
        }
    ),
]


def device_name(value: str) -> str:
    """A device name as stored and compared: the host name, lowercased (`Web-01.Example.ORG`
    -> `web-01.example.org`)."""
    return value.strip().lower()


DeviceName = Annotated[
    str,
    Field(pattern=DEVICE_NAME_PATTERN, max_length=253),
    AfterValidator(device_name),
]
TenantPath = Annotated[str, Field(pattern=TENANT_PATTERN)]
PatchId = Annotated[str, Field(min_length=1, max_length=200, pattern=PATCH_ID_PATTERN)]


def tenant_parent(tenant: str) -> str | None:
    """`acme` for `acme/retail`; None for a partner."""
    return tenant.split("/", 1)[0] if "/" in tenant else None


def tenant_lineage(tenant: str) -> tuple[str, ...]:
    """The tenant and its parent, nearest first: `('acme/retail', 'acme')`."""
    parent = tenant_parent(tenant)
    return (tenant, parent) if parent else (tenant,)


def tenant_contains(outer: str | None, inner: str) -> bool:
    """Whether an object of tenant `outer` (None = every tenant) applies to tenant `inner`."""
    return outer is None or inner == outer or inner.startswith(outer + "/")


# --- shared structures ----------------------------------------------------------------------


class Metadata(Model):
    """Identity of a policy object."""

    name: Name = Field(description="Unique per (kind, tenant); lowercase letters, digits and '-'.")
    tenant: TenantPath | None = Field(
        default=None,
        description="Partner (`acme`) or client (`acme/retail`); omitted means every tenant.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")
    description: str | None = Field(default=None, description="What this object is for.")


class Selector(Model):
    """Dynamic device selection, evaluated against the current device facts at every reconcile."""

    os: OsFamily | None = Field(default=None, description="Operating system family.")
    os_versions: tuple[str, ...] = Field(
        default=(),
        description="Globs matched against the OS name and version, e.g. `Windows Server 2022*`.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Every label must be present with this value."
    )

    def is_empty(self) -> bool:
        return self.os is None and not self.os_versions and not self.labels


class Exclusion(Model):
    """Devices taken out of an otherwise matching target set."""

    devices: tuple[DeviceName, ...] = Field(
        default=(),
        description="Device names (host names, case-insensitive) never targeted.",
    )
    groups: tuple[Name, ...] = Field(
        default=(), description="Groups whose devices are never targeted."
    )


class Targets(Model):
    """The devices an object applies to: groups, devices and selector together, minus exclude."""

    groups: tuple[Name, ...] = Field(
        default=(), description="DeviceGroup names, of the same tenant or a parent tenant."
    )
    devices: tuple[DeviceName, ...] = Field(
        default=(),
        description="Device names: the host names the agents enrolled with (`web-01`, "
        "`realhost.example.org`), case-insensitive.",
    )
    selector: Selector | None = Field(
        default=None, description="Dynamic selection by OS, OS version and labels."
    )
    exclude: Exclusion = Field(default_factory=Exclusion, description="Devices never targeted.")

    def is_empty(self) -> bool:
        return not self.groups and not self.devices and self.selector is None


class Document(Model):
    """The envelope every policy document shares; subclasses fix `kind` and `spec`."""

    KIND: ClassVar[str] = ""
    api_version: Literal["patchctl/v1"] = Field(
        alias="apiVersion", description="Always `patchctl/v1`."
    )
    metadata: Metadata = Field(description="Name, tenant, labels and description.")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def tenant(self) -> str | None:
        return self.metadata.tenant

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.KIND, self.metadata.tenant, self.metadata.name)


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """(kind, tenant, name): unique across a policy repository."""

    kind: str
    tenant: str | None
    name: str

    def __str__(self) -> str:
        scope = self.tenant or "*"
        return f"{self.kind}/{scope}/{self.name}"

    @property
    def owner(self) -> str | None:
        """The tenant whose readers may see the object (a read token's scope must contain it):
        the object's own tenant, but for a Tenant document the partner it defines (it names
        that partner's clients, which no other tenant may see: docs/security.md); None for an
        object of every tenant, which every scope sees."""
        return self.name if self.kind == TENANT_KIND else self.tenant


TENANT_KIND = "Tenant"  # `kinds.tenants.Tenant.KIND`, which imports this module
