"""Each policy kind's valid and invalid forms, checked through the models directly."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pydantic
import pytest
from pydantic import BaseModel, Field, ValidationError

from controller.kinds import (
    KINDS,
    Approval,
    ApprovalProposal,
    Notification,
    PatchWindow,
    Script,
)
from controller.kinds.common import Quantity, independent_errors, parse_duration, parse_quantity

TARGETS = {"groups": ["g"]}


def document(kind: str, spec: dict[str, Any] | None, **metadata: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "patchctl/v1",
        "kind": kind,
        "metadata": {"name": "x", **metadata},
    }
    if spec is not None:
        body["spec"] = spec
    return body


WINDOW = {
    "targets": TARGETS,
    "recurrence": {"cron": "0 2 * * SUN"},
    "timezone": "UTC",
    "duration": "4h",
}
SCRIPT = {"os": "linux", "shell": "bash", "content": "true"}

VALID = [
    (
        "Baseline",
        {
            "os": "windows",
            "targets": TARGETS,
            "rules": [
                {
                    "classifications": ["security"],
                    "severities": ["critical"],
                    "minRating": 7.0,
                    "releasedAfterDays": 7,
                }
            ],
            "include": ["KB1"],
            "exclude": ["KB2"],
            "excludeAction": "allow-as-dependency",
            "staleScanAfter": "3d",
        },
    ),
    (
        "Whitelist",
        {
            "targets": TARGETS,
            "patches": [
                {"id": "USN-1-1"},
                {"classifications": ["security"], "vendors": ["microsoft"]},
            ],
        },
    ),
    (
        "Approval",
        {
            "patches": ["KB1"],
            "targets": TARGETS,
            "reason": "hot fix",
            "expires": "2027-01-31",
            "ticket": "CHG-1",
        },
    ),
    ("PatchWindow", WINDOW),
    ("PatchWindow", {**WINDOW, "recurrence": {"patchTuesday": {"offsetDays": 26, "at": "23:59"}}}),
    (
        "PatchWindow",
        {
            **WINDOW,
            "recurrence": {"once": "2026-12-05T02:00"},
            "cutoff": "1h",
            "rollout": {"maxConcurrent": "10%", "maxFailures": 5},
        },
    ),
    ("ScanSchedule", {"targets": {"selector": {"os": "linux"}}, "every": "12h"}),
    ("Script", SCRIPT),
    (
        "Script",
        {
            "os": "windows",
            "shell": "powershell",
            "content": "exit 0",
            "timeout": "90s",
            "successCodes": [0, 3010],
        },
    ),
    (
        "ScriptJob",
        {
            "script": "s",
            "targets": TARGETS,
            "recurrence": {"cron": "0 12 * * WED"},
            "timezone": "Europe/Berlin",
        },
    ),
    (
        "Notification",
        {
            "events": ["InstallFailed"],
            "minSeverity": "warning",
            "channel": {"webhook": {"url": "https://h.example/x", "secretEnv": "HOOK_SECRET"}},
        },
    ),
    (
        "Notification",
        {"events": ["PolicyInvalid"], "channel": {"email": {"to": ["ops@example.com"]}}},
    ),
    (
        "ReportSchedule",
        {
            "recurrence": {"cron": "0 6 * * MON"},
            "formats": ["markdown", "csv"],
            "scope": "baseline",
        },
    ),
    ("PatchFeed", {"format": "osv", "source": "feeds/ubuntu/", "os": "linux", "refresh": "6h"}),
    ("Tenant", {"displayName": "ACME", "clients": ["retail"]}),
    (
        "DeviceGroup",
        {
            "devices": ["web-01"],
            "selector": {
                "os": "windows",
                "osVersions": ["Windows Server 2022*"],
                "labels": {"env": "prod"},
            },
        },
    ),
    ("Device", {"labels": {"site": "fra"}}),
    (
        "ApprovalProposal",
        {
            "baselines": ["web"],
            "minimumReleaseAge": "7d",
            "maxOpen": 3,
            "labels": ["patches"],
            "reviewers": ["alice"],
        },
    ),
    ("ApprovalProposal", {}),
]


@pytest.mark.parametrize(
    ("kind", "spec"), VALID, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VALID)]
)
def test_valid_documents_are_accepted(kind: str, spec: dict[str, Any]) -> None:
    """A well-formed document of each kind validates and keeps its kind."""
    model = KINDS[kind].model_validate(document(kind, spec))
    assert kind == model.KIND


INVALID = [
    ("Baseline", {"os": "solaris", "targets": TARGETS}, ("spec", "os")),
    (
        "Baseline",
        {"os": "windows", "targets": TARGETS, "rules": [{"severities": ["importnt"]}]},
        ("spec", "rules", 0, "severities", 0),
    ),
    (
        "Baseline",
        {"os": "windows", "targets": TARGETS, "rules": [{"minRating": 11}]},
        ("spec", "rules", 0, "minRating"),
    ),
    (
        "Baseline",
        {"os": "windows", "targets": TARGETS, "staleScanAfter": "7 days"},
        ("spec", "staleScanAfter"),
    ),
    ("Baseline", {"os": "windows", "targets": TARGETS, "colour": "blue"}, ("spec", "colour")),
    ("Baseline", {"targets": TARGETS}, ("spec", "os")),
    (
        "Whitelist",
        {"targets": TARGETS, "patches": [{"id": "KB1", "vendors": ["microsoft"]}]},
        ("spec", "patches", 0),
    ),
    ("Whitelist", {"targets": TARGETS, "patches": [{}]}, ("spec", "patches", 0)),
    ("Whitelist", {"targets": TARGETS, "patches": []}, ("spec", "patches")),
    ("Approval", {"patches": ["KB1"], "targets": TARGETS}, ("spec", "reason")),
    ("ApprovalProposal", {"maxOpen": 0}, ("spec", "maxOpen")),
    ("ApprovalProposal", {"minimumReleaseAge": "a week"}, ("spec", "minimumReleaseAge")),
    ("ApprovalProposal", {"baselines": ["Web Servers"]}, ("spec", "baselines", 0)),
    ("Approval", {"patches": [], "targets": TARGETS, "reason": "r"}, ("spec", "patches")),
    (
        "Approval",
        {"patches": ["KB1"], "targets": TARGETS, "reason": "r", "expires": "next week"},
        ("spec", "expires"),
    ),
    ("PatchWindow", {**WINDOW, "timezone": "Mars/Olympus"}, ("spec", "timezone")),
    (
        "PatchWindow",
        {**WINDOW, "recurrence": {"cron": "0 25 * * *"}},
        ("spec", "recurrence", "cron"),
    ),
    ("PatchWindow", {**WINDOW, "recurrence": {"cron": "0 2 * *"}}, ("spec", "recurrence", "cron")),
    ("PatchWindow", {**WINDOW, "recurrence": {}}, ("spec", "recurrence")),
    (
        "PatchWindow",
        {**WINDOW, "recurrence": {"cron": "0 2 * * *", "once": "2026-12-05T02:00"}},
        ("spec", "recurrence"),
    ),
    (
        "PatchWindow",
        {**WINDOW, "recurrence": {"patchTuesday": {"offsetDays": 27}}},
        ("spec", "recurrence", "patchTuesday", "offsetDays"),
    ),
    (
        "PatchWindow",
        {**WINDOW, "recurrence": {"patchTuesday": {"at": "25:00"}}},
        ("spec", "recurrence", "patchTuesday", "at"),
    ),
    ("PatchWindow", {**WINDOW, "cutoff": "4h"}, ("spec",)),
    (
        "PatchWindow",
        {**WINDOW, "rollout": {"maxConcurrent": "110%"}},
        ("spec", "rollout", "maxConcurrent"),
    ),
    ("PatchWindow", {**WINDOW, "rollout": {"maxFailures": -1}}, ("spec", "rollout", "maxFailures")),
    ("PatchWindow", {**WINDOW, "approval": "automatic"}, ("spec", "approval")),
    ("PatchWindow", {**WINDOW, "duration": 4}, ("spec", "duration")),
    ("ScanSchedule", {"targets": TARGETS, "every": "daily"}, ("spec", "every")),
    ("Script", {**SCRIPT, "shell": "powershell"}, ("spec",)),
    ("Script", {**SCRIPT, "content": ""}, ("spec", "content")),
    (
        "ScriptJob",
        {"script": "Bad Name", "targets": TARGETS, "recurrence": {"cron": "* * * * *"}},
        ("spec", "script"),
    ),
    (
        "Notification",
        {"events": ["Exploded"], "channel": {"email": {"to": ["a@b"]}}},
        ("spec", "events", 0),
    ),
    (  # an alert kind that cannot be notified (yet)
        "Notification",
        {"events": ["InstallFailed", "FeedFailed"], "channel": {"email": {"to": ["a@b"]}}},
        ("spec", "events", 1),
    ),
    ("Notification", {"events": ["InstallFailed"], "channel": {}}, ("spec", "channel")),
    (
        "Notification",
        {"events": ["InstallFailed"], "channel": {"webhook": {"url": "ftp://x"}}},
        ("spec", "channel", "webhook", "url"),
    ),
    (
        "Notification",
        {
            "events": ["InstallFailed"],
            "channel": {"slack": {"urlEnv": "https://hooks.slack.com/x"}},
        },
        ("spec", "channel", "slack", "urlEnv"),
    ),
    (
        "ReportSchedule",
        {"recurrence": {"cron": "0 6 * * MON"}, "formats": ["pdf"]},
        ("spec", "formats", 0),
    ),
    ("PatchFeed", {"format": "rss", "source": "x"}, ("spec", "format")),
    ("Tenant", {"clients": ["Retail"]}, ("spec", "clients", 0)),
    ("DeviceGroup", {"selector": {"os": "mac"}}, ("spec", "selector", "os")),
    ("Device", {"labels": {"env": 1}}, ("spec", "labels", "env")),
]


@pytest.mark.parametrize(
    ("kind", "spec", "loc"),
    INVALID,
    ids=[f"{k}-{'.'.join(map(str, loc))}-{i}" for i, (k, _, loc) in enumerate(INVALID)],
)
def test_invalid_documents_name_the_field(
    kind: str, spec: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    """An invalid document fails with an error located at the offending field."""
    with pytest.raises(pydantic.ValidationError) as raised:
        KINDS[kind].model_validate(document(kind, spec))
    locations = [tuple(error["loc"]) for error in raised.value.errors()]
    assert loc in locations


@pytest.mark.parametrize(
    ("metadata", "loc"),
    [
        ({"name": "Web_01"}, ("metadata", "name")),
        ({"name": "a" * 64}, ("metadata", "name")),
        ({"name": "x", "tenant": "acme/retail/store"}, ("metadata", "tenant")),
        ({"name": "x", "owner": "me"}, ("metadata", "owner")),
    ],
    ids=["uppercase-name", "name-too-long", "three-level-tenant", "unknown-metadata-field"],
)
def test_invalid_metadata_is_rejected(metadata: dict[str, Any], loc: tuple[str, ...]) -> None:
    """Names and tenant paths follow the documented patterns, and metadata has no extra fields."""
    body = document("Device", {})
    body["metadata"] = metadata
    with pytest.raises(pydantic.ValidationError) as raised:
        KINDS["Device"].model_validate(body)
    assert loc in [tuple(error["loc"]) for error in raised.value.errors()]


def test_models_are_frozen() -> None:
    """Policy objects cannot be changed after loading."""
    window = PatchWindow.model_validate(document("PatchWindow", WINDOW))
    with pytest.raises(pydantic.ValidationError):
        window.spec.duration = timedelta(hours=1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
    ],
    ids=["seconds", "minutes", "hours", "days", "weeks", "combined"],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    """Durations are written with units s, m, h, d and w."""
    assert expected == parse_duration(text)


@pytest.mark.parametrize("text", ["", "4", "4 h", "h", "1.5h", "PT4H"], ids=repr)
def test_bad_durations_are_refused(text: str) -> None:
    """Anything but the documented duration syntax is an error."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["36526d", "99999999d", "9999999999999d", "1" * 5000 + "s"], ids=lambda t: t[:16]
)
def test_durations_beyond_a_century_are_refused(text: str) -> None:
    """Longer than 100 years is a ValueError (never an OverflowError), so a policy field or an
    option names it instead of a time plus it leaving the calendar later."""
    with pytest.raises(ValueError, match=r"is longer than 100 years \(36525d\)"):
        parse_duration(text)


def test_a_century_is_a_duration() -> None:
    """The longest duration accepted is exactly 100 years (36525 days)."""
    assert timedelta(days=36525) == parse_duration("36525d")


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [("10%", 100, 10), ("10%", 5, 1), ("10%", 0, 0), (5, 100, 5), ("5", 2, 5), ("100%", 7, 7)],
    ids=["percent", "percent-rounds-up-to-one", "percent-of-nothing", "count", "count-text", "all"],
)
def test_quantities_resolve_against_a_population(value: object, total: int, expected: int) -> None:
    """A percentage of a non-empty population allows at least one; a count is absolute."""
    assert expected == parse_quantity(value).of(total)


def test_quantity_renders_as_written() -> None:
    """Quantities serialise back to the spelling the user wrote."""
    assert ["10%", "5"] == [str(Quantity(10, percent=True)), str(Quantity(5, percent=False))]


@pytest.mark.parametrize(
    ("expires", "today", "expired"),
    [
        (None, date(2030, 1, 1), False),
        (date(2027, 1, 31), date(2027, 1, 31), False),
        (date(2027, 1, 31), date(2027, 2, 1), True),
    ],
    ids=["no-expiry", "last-day-still-valid", "day-after-expired"],
)
def test_approval_expiry_is_inclusive(expires: date | None, today: date, expired: bool) -> None:
    """An approval holds through its `expires` day and approves nothing after it."""
    spec: dict[str, Any] = {"patches": ["KB1"], "targets": TARGETS, "reason": "r"}
    if expires:
        spec["expires"] = expires.isoformat()
    approval = Approval.model_validate(document("Approval", spec))
    assert expired == approval.is_expired(today=today)


class _Listed(BaseModel):
    """A tuple with a minimum length, as `Approval.spec.patches` has."""

    items: tuple[str, ...] = Field(min_length=2)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([1, "a"], [(("items", 0), "string_type")]),
        ([1, 2], [(("items", 0), "string_type"), (("items", 1), "string_type")]),
        ([1], [(("items", 0), "string_type"), (("items",), "too_short")]),
        (["a"], [(("items",), "too_short")]),
    ],
    ids=["bad-item-in-long-enough", "all-bad", "bad-item-and-too-short", "too-short"],
)
def test_independent_errors_drop_too_short_that_follows_a_bad_item(
    items: list[object], expected: list[tuple[tuple[object, ...], str]]
) -> None:
    """A too_short is dropped when enough items were written and one of them failed."""
    with pytest.raises(ValidationError) as caught:
        _Listed(items=items)  # type: ignore[arg-type]
    assert expected == [
        (tuple(e["loc"]), e["type"]) for e in independent_errors(caught.value.errors())
    ]


# --- durations: which may be 0s ---------------------------------------------------------------


def duration_fields(
    model: type[BaseModel], path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The alias path of every duration field of a model and of the models it holds."""
    for name, field in model.model_fields.items():
        here = (*path, field.alias or name)
        pending = [field.annotation]
        while pending:
            annotation = pending.pop()
            if annotation is timedelta:
                yield here
            elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from duration_fields(annotation, here)
            else:
                pending.extend(typing.get_args(annotation))


def with_value(spec: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A copy of `spec` with `value` at `path` (mappings created on the way)."""
    first, *rest = path
    inner = spec.get(first, {})
    return {**spec, first: with_value(inner, tuple(rest), value) if rest else value}


SCHEDULE = {"recurrence": {"cron": "0 6 * * 1"}, "duration": "4h"}
# (kind, a valid spec, the path of a duration in it) for every duration of every kind
POSITIVE_DURATIONS = [
    ("Baseline", {"os": "windows", "targets": TARGETS}, ("staleScanAfter",)),
    ("PatchWindow", WINDOW, ("duration",)),
    ("PatchWindow", {**WINDOW, "missedWindow": "catch-up"}, ("catchUpWithin",)),
    ("ScanSchedule", {"targets": TARGETS}, ("every",)),
    ("Script", SCRIPT, ("timeout",)),
    ("PatchFeed", {"format": "osv", "source": "feeds/x/"}, ("refresh",)),
    ("ApprovalProposal", {"schedule": SCHEDULE}, ("schedule", "duration")),
]
ZERO_DURATIONS = [  # grace periods: 0s is no grace
    ("PatchWindow", WINDOW, ("cutoff",)),
    ("ApprovalProposal", {}, ("minimumReleaseAge",)),
]


def test_every_duration_field_is_decided() -> None:
    """Each duration of each kind is listed as either longer than 0s or possibly 0s, so a new
    duration field cannot slip in without a decision."""
    listed = {(kind, path) for kind, _, path in POSITIVE_DURATIONS + ZERO_DURATIONS}
    found = {
        (kind, path[1:])
        for kind, model in KINDS.items()
        for path in duration_fields(model)
        if path[0] == "spec"
    }
    assert found == listed


@pytest.mark.parametrize("zero", ["0s", "0h0m", "00d"])
@pytest.mark.parametrize(
    ("kind", "spec", "path"),
    POSITIVE_DURATIONS,
    ids=[f"{kind}.{'.'.join(path)}" for kind, _, path in POSITIVE_DURATIONS],
)
def test_intervals_lengths_and_time_limits_are_longer_than_zero(
    kind: str, spec: dict[str, Any], path: tuple[str, ...], zero: str
) -> None:
    """A zero interval, length or time limit is refused at its own field."""
    with pytest.raises(pydantic.ValidationError) as raised:
        KINDS[kind].model_validate(document(kind, with_value(spec, path, zero)))
    assert [(("spec", *path), "Value error, must be longer than 0s")] == [
        (tuple(error["loc"]), error["msg"]) for error in raised.value.errors()
    ]


@pytest.mark.parametrize(
    ("kind", "spec", "path"),
    ZERO_DURATIONS,
    ids=[f"{kind}.{'.'.join(path)}" for kind, _, path in ZERO_DURATIONS],
)
def test_grace_periods_may_be_zero(kind: str, spec: dict[str, Any], path: tuple[str, ...]) -> None:
    """A cutoff or a soak of 0s means none."""
    model = KINDS[kind].model_validate(document(kind, with_value(spec, path, "0s")))
    assert "0s" == model.model_dump(mode="json", by_alias=True)["spec"][path[-1]]


# --- scripts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"timeout": "24h1s"}, [(("timeout",), "1d1s is longer than a script may run (24h)")]),
        (
            {"successCodes": [256, -1]},
            [
                (
                    ("successCodes", 0),
                    "256 is not an exit code a linux process can end with (0-255)",
                ),
                (
                    ("successCodes", 1),
                    "-1 is not an exit code a linux process can end with (0-255)",
                ),
            ],
        ),
        (
            {"os": "windows", "shell": "powershell", "successCodes": [3010, -1, 2**32]},
            [
                (
                    ("successCodes", 1),
                    "-1 is not an exit code a windows process can end with (0-4294967295)",
                ),
                (
                    ("successCodes", 2),
                    "4294967296 is not an exit code a windows process can end with (0-4294967295)",
                ),
            ],
        ),
    ],
    ids=["timeout-over-a-day", "linux-exit-codes", "windows-exit-codes"],
)
def test_script_limits_are_what_the_agent_can_honour(
    spec: dict[str, Any], expected: list[tuple[tuple[object, ...], str]]
) -> None:
    """A timeout beyond a day and exit codes the OS never reports are refused at the field."""
    with pytest.raises(pydantic.ValidationError) as raised:
        KINDS["Script"].model_validate(document("Script", {**SCRIPT, **spec}))
    errors = independent_errors(raised.value.errors())
    assert [(("spec", *loc), f"Value error, {msg}") for loc, msg in expected] == [
        (tuple(e["loc"]), e["msg"]) for e in errors
    ]


@pytest.mark.parametrize(
    "spec",
    [
        {**SCRIPT, "timeout": "24h", "successCodes": [0, 255]},
        {"os": "windows", "shell": "powershell", "content": "x", "successCodes": [0, 2**32 - 1]},
    ],
    ids=["linux", "windows"],
)
def test_script_limits_are_inclusive(spec: dict[str, Any]) -> None:
    """A day's timeout and exit codes 0 to 255 (Linux), to 4294967295 (Windows) are accepted."""
    script = Script.model_validate(document("Script", spec))
    assert tuple(spec["successCodes"]) == script.spec.success_codes


# --- approval proposals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reviewers", "alice"),
        ("reviewers", "ops-team"),
        ("reviewers", "jane.doe_2"),
        ("reviewers", "-legacy-"),  # GitHub still has such accounts
        ("reviewers", "a" * 255),
        ("labels", "patches"),
        ("labels", "needs review"),
        ("labels", "priorité: haute"),
        ("labels", "x" * 50),
    ],
    ids=lambda v: v[:20],
)
def test_forge_names_any_forge_takes_are_accepted(field: str, value: str) -> None:
    """Reviewers are user names GitHub, Gitea or GitLab allow; labels what GitHub and GitLab take."""
    spec = ApprovalProposal.model_validate(document("ApprovalProposal", {field: [value]})).spec
    assert (value,) == getattr(spec, field)


def test_a_reviewer_written_as_a_mention_is_the_user_name() -> None:
    """`@alice`, as a pull request mentions her (and as earlier versions took it), is `alice`,
    as the forges' review APIs want her."""
    body = document("ApprovalProposal", {"reviewers": ["@alice", "bob"]})
    assert ("alice", "bob") == ApprovalProposal.model_validate(body).spec.reviewers


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("reviewers", "", "is not a forge user name"),
        ("reviewers", "bad reviewer!", "is not a forge user name"),
        ("reviewers", "@@alice", "is not a forge user name"),
        ("reviewers", "alice.", "is not a forge user name"),
        ("reviewers", ".alice", "is not a forge user name"),
        ("reviewers", "a" * 256, "is not a forge user name"),
        ("labels", "", "is not a pull request label"),
        ("labels", " patches", "is not a pull request label"),
        ("labels", "patches,security", "is not a pull request label"),
        ("labels", "tab\there", "is not a pull request label"),
        ("labels", "x" * 51, "is not a pull request label"),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_forge_names_no_forge_takes_are_refused(field: str, value: str, expected: str) -> None:
    """An empty, spaced or punctuated reviewer and an empty or comma label fail at the item."""
    body = document("ApprovalProposal", {field: ["fine", value]})
    with pytest.raises(pydantic.ValidationError) as raised:
        ApprovalProposal.model_validate(body)
    prefix = f"Value error, {value!r} {expected}: "
    assert [(("spec", field, 1), True)] == [
        (tuple(e["loc"]), e["msg"].startswith(prefix)) for e in raised.value.errors()
    ]


@pytest.mark.parametrize(
    ("spec", "loc", "message"),
    [
        ({"groupBy": "baseline"}, ("groupBy",), "Input should be 'tenant'"),
        (
            {"timezone": "UTC"},
            ("timezone",),
            "Value error, 'UTC' is the schedule's time zone, but no schedule is set",
        ),
        (
            {"schedule": {"cron": "0 7 * * MON", "timezone": "Europe/Berlin"}, "timezone": "UTC"},
            ("timezone",),
            "Value error, 'UTC' differs from schedule.timezone 'Europe/Berlin': give the time "
            "zone once",
        ),
        (
            {"schedule": {"duration": "4h"}},
            ("schedule",),
            "Value error, set recurrence (cron, patchTuesday or once) or its shorthand cron",
        ),
        (
            {"schedule": {"cron": "0 7 * * MON", "recurrence": {"cron": "0 7 * * MON"}}},
            ("schedule",),
            "Value error, set recurrence or its shorthand cron, not both",
        ),
        (
            {"schedule": {"cron": "0 7 * *"}},
            ("schedule", "cron"),
            "Value error, '0 7 * *' is not a 5-field cron expression (minute hour day month "
            "weekday)",
        ),
    ],
    ids=[
        "other-grouping",
        "timezone-without-schedule",
        "two-timezones",
        "no-recurrence",
        "recurrence-and-cron",
        "bad-cron-shorthand",
    ],
)
def test_proposal_schedule_errors_name_the_field(
    spec: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    """A grouping other than tenant, a time zone without or against the schedule's, and a
    schedule without exactly one recurrence are errors at the field."""
    with pytest.raises(pydantic.ValidationError) as raised:
        ApprovalProposal.model_validate(document("ApprovalProposal", spec))
    assert [(("spec", *loc), message)] == [
        (tuple(e["loc"]), e["msg"]) for e in raised.value.errors()
    ]


# --- notifications ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["ops@example.com", "o'brien+patches@mail.example.co.uk", "root@localhost"],
)
def test_email_recipients_are_addresses(address: str) -> None:
    """A bare address, with the punctuation mail allows and a host without dots, is a recipient."""
    spec = {"events": ["InstallFailed"], "channel": {"email": {"to": [address]}}}
    notification = Notification.model_validate(document("Notification", spec))
    assert notification.spec.channel.email is not None
    assert (address,) == notification.spec.channel.email.to


def test_email_recipients_that_are_not_addresses_are_refused_each() -> None:
    """Not an address, an empty one, a display name holding a comma and a comma list fail at
    their item, with the rule the server's `[smtp] from` uses; `Ops <ops@x.io>` (a display name
    and an address, which earlier versions took) is a recipient."""
    to = [
        "not-an-email",
        "",
        "Ops, Team <ops@example.com>",
        "a@example.com,b@example.com",
        "ok@x.io",
        "Ops <ops@x.io>",
    ]
    spec = {"events": ["InstallFailed"], "channel": {"email": {"to": to}}}
    with pytest.raises(pydantic.ValidationError) as raised:
        Notification.model_validate(document("Notification", spec))
    assert [
        (("spec", "channel", "email", "to", i), f"Value error, {to[i]!r} is not an email address")
        for i in range(4)
    ] == [(tuple(e["loc"]), e["msg"]) for e in independent_errors(raised.value.errors())]
