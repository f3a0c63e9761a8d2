"""Request bodies are standard JSON of exact types: non-JSON numbers are a 400, coercions,
NUL characters and out-of-range numbers or times a 422 naming the field, and none changes
anything (issue 17.8, issue 11.12)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.server import errors, models
from controller.store import jobs, schema, tokens
from controller.store.job_states import JobKind

pytestmark = pytest.mark.anyio

SCAN = {"scannedAt": "2026-11-20T09:00:00Z", "rebootRequired": False}
JSON = {"content-type": "application/json"}


def snapshot(api) -> list[Any]:
    """Every row an agent call may change."""
    tables = (schema.devices, schema.scans, schema.patch_states, schema.inventories, schema.jobs)
    with api.store.read() as conn:
        return [sorted(map(repr, conn.execute(sa.select(table)))) for table in tables]


NON_JSON_NUMBERS = [
    ("nan-custom-fact", b'{"facts": {"custom": {"temp": NaN}}}'),
    ("infinity-custom-fact", b'{"facts": {"custom": {"temp": Infinity}}}'),
    ("minus-infinity-custom-fact", b'{"facts": {"custom": {"temp": -Infinity}}}'),
    ("nan-uptime", b'{"facts": {"uptime": NaN}}'),
    ("nan-boolean", b'{"scan": {"scannedAt": "2026-11-20T09:00:00Z", "rebootRequired": NaN}}'),
    ("infinity-in-list", b'{"facts": {"ipAddresses": [Infinity]}}'),
]


@pytest.mark.parametrize(
    "raw", [case[1] for case in NON_JSON_NUMBERS], ids=[c[0] for c in NON_JSON_NUMBERS]
)
async def test_non_json_numbers_in_a_report_are_a_400(api, raw) -> None:
    """NaN and Infinity are not JSON: the report gets a 400 saying so and stores nothing."""
    device, auth = await api.enroll()
    before = snapshot(api)
    answer = await api.client.post(
        f"/api/v1/devices/{device}/report", headers=auth | JSON, content=raw
    )
    assert (400, "bad-request") == (answer.status_code, answer.json()["error"])
    assert "NaN, Infinity and -Infinity are not JSON" in answer.json()["message"]
    assert before == snapshot(api)


async def test_non_json_numbers_in_an_enrolment_are_a_400(api) -> None:
    """An enrolment body with NaN is a 400 and enrols nothing."""
    body = api.enroll_body(api.token("acme/retail", kind=tokens.TokenKind.ENROLLMENT), "web-01")
    raw = json.dumps(body)[:-1].encode() + b', "labels": {"a": NaN}}'
    before = snapshot(api)
    answer = await api.client.post("/api/v1/enroll", headers=JSON, content=raw)
    assert 400 == answer.status_code
    assert before == snapshot(api)


async def test_non_json_numbers_in_a_job_event_are_a_400(api) -> None:
    """A job event with Infinity is a 400 and leaves the job as it was."""
    device, auth = await api.enroll()
    with api.store.write() as conn:
        jobs.insert_jobs(conn, [_scan_job(device)], now=api.clock())
    before = snapshot(api)
    answer = await api.client.post(
        f"/api/v1/jobs/scan-{device}/events",
        headers=auth | JSON,
        content=b'{"state": "acked", "seq": Infinity}',
    )
    assert 400 == answer.status_code
    assert before == snapshot(api)


INEXACT_REPORTS = [
    ("reboot-required-zero", {"scan": SCAN | {"rebootRequired": 0}}, "scan.rebootRequired"),
    ("reboot-required-string", {"scan": SCAN | {"rebootRequired": "false"}}, "scan.rebootRequired"),
    ("scanned-at-number", {"scan": SCAN | {"scannedAt": 1700000000}}, "scan.scannedAt"),
    (
        "scanned-at-year-1",
        {"scan": SCAN | {"scannedAt": "0001-01-01T00:00:00+01:00"}},
        "scan.scannedAt",
    ),
    (
        "scanned-at-before-1970",
        {"scan": SCAN | {"scannedAt": "1969-12-31T23:59:59Z"}},
        "scan.scannedAt",
    ),
    (
        "installed-at-overflow",
        {"scan": SCAN | {"installed": [{"id": "KB1", "installedAt": "9999-12-31T23:59:59-23:59"}]}},
        "scan.installed[0].installedAt",
    ),
    (
        "size-as-float",
        {"scan": SCAN | {"missing": [{"id": "KB1", "sizeBytes": 1.0}]}},
        "scan.missing[0].sizeBytes",
    ),
    (
        "size-beyond-64-bits",
        {"scan": SCAN | {"missing": [{"id": "KB1", "sizeBytes": 2**63}]}},
        "scan.missing[0].sizeBytes",
    ),
    (
        "epoch-false",
        {
            "inventory": {
                "packages": [{"name": "bash", "epoch": False, "version": "5.2", "arch": "amd64"}]
            }
        },
        "inventory.packages[0].epoch",
    ),
    (
        "epoch-float",
        {
            "inventory": {
                "packages": [{"name": "bash", "epoch": 1.5, "version": "5.2", "arch": "amd64"}]
            }
        },
        "inventory.packages[0].epoch",
    ),
    ("uptime-string", {"facts": {"uptime": "3600"}}, "facts.uptime"),
    ("uptime-true", {"facts": {"uptime": True}}, "facts.uptime"),
    ("uptime-beyond-64-bits", {"facts": {"uptime": 2**64}}, "facts.uptime"),
    ("custom-object", {"facts": {"custom": {"disk": {"free": 1}}}}, "facts.custom.disk"),
    ("custom-list", {"facts": {"custom": {"disks": ["sda"]}}}, "facts.custom.disks"),
    ("role-number", {"facts": {"role": 1}}, "facts.role"),
    ("label-number", {"facts": {"labels": {"site": 7}}}, "facts.labels.site"),
    ("nul-in-custom-fact", {"facts": {"custom": {"note": "a\x00b"}}}, "facts.custom.note"),
    ("nul-in-patch-id", {"scan": SCAN | {"missing": [{"id": "KB\x001"}]}}, "scan.missing[0].id"),
    (
        "nul-in-package",
        {"inventory": {"packages": [{"name": "ba\x00sh", "version": "5.2", "arch": "amd64"}]}},
        "inventory.packages[0].name",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in INEXACT_REPORTS], ids=[c[0] for c in INEXACT_REPORTS]
)
async def test_inexact_reports_are_a_422_naming_the_field(api, body, field) -> None:
    """A value of the wrong JSON type, out of range, or holding a NUL is refused by field."""
    device, auth = await api.enroll()
    before = snapshot(api)
    answer = await api.client.post(f"/api/v1/devices/{device}/report", headers=auth, json=body)
    assert (422, field) == (answer.status_code, answer.json()["details"][0]["field"])
    assert before == snapshot(api)


INEXACT_JOB_EVENTS = [
    ("seq-true", {"state": "acked", "seq": True}, "seq"),
    ("seq-float", {"state": "acked", "seq": 1.0}, "seq"),
    ("seq-string", {"state": "acked", "seq": "1"}, "seq"),
    ("reboot-required-one", {"state": "succeeded", "rebootRequired": 1}, "rebootRequired"),
    ("nul-in-output", {"state": "failed", "output": "exit\x00"}, "output"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [case[1:] for case in INEXACT_JOB_EVENTS],
    ids=[c[0] for c in INEXACT_JOB_EVENTS],
)
async def test_inexact_job_events_are_a_422_naming_the_field(api, body, field) -> None:
    """A job event field of the wrong JSON type is refused by field; the job is unchanged."""
    device, auth = await api.enroll()
    with api.store.write() as conn:
        jobs.insert_jobs(conn, [_scan_job(device)], now=api.clock())
    before = snapshot(api)
    answer = await api.client.post(f"/api/v1/jobs/scan-{device}/events", headers=auth, json=body)
    assert (422, field) == (answer.status_code, answer.json()["details"][0]["field"])
    assert before == snapshot(api)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"role": 1}, "role"),
        ({"labels": {"site": True}}, "labels.site"),
        ({"hostname": 7}, "hostname"),
        ({"os": {"family": "linux", "name": "Ubuntu", "version": 24.04}}, "os.version"),
    ],
    ids=["role-number", "label-boolean", "hostname-number", "os-version-number"],
)
async def test_inexact_enrolments_are_a_422_naming_the_field(api, change, field) -> None:
    """An enrolment field of the wrong JSON type is refused by field and enrols nothing."""
    body = (
        api.enroll_body(api.token("acme/retail", kind=tokens.TokenKind.ENROLLMENT), "web-01")
        | change
    )
    before = snapshot(api)
    answer = await api.client.post("/api/v1/enroll", json=body)
    assert (422, field) == (answer.status_code, answer.json()["details"][0]["field"])
    assert before == snapshot(api)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/jobs?device=a%00b",
        "/api/v1/audit?patch=KB%001",
        "/api/v1/devices/a%00b",
        "/api/v1/alerts?since=%0A",
        "/healthz?x=%7f",
    ],
    ids=[
        "nul-in-query",
        "nul-in-audit-filter",
        "nul-in-path",
        "newline-in-query",
        "delete-in-query",
    ],
)
async def test_control_characters_in_the_url_are_a_400(api, url) -> None:
    """A URL holding a NUL or another control character is refused before any handler."""
    read = {"Authorization": f"Bearer {api.token('acme')}"}
    answer = await api.client.get(url, headers=read)
    assert (400, "bad-request") == (answer.status_code, answer.json()["error"])


async def test_a_literal_backslash_u0000_is_not_a_nul(api) -> None:
    """The six characters `\\u0000` written as text (an escaped backslash) are stored as sent."""
    device, auth = await api.enroll()
    raw = b'{"facts": {"custom": {"note": "\\\\u0000"}}}'
    answer = await api.client.post(
        f"/api/v1/devices/{device}/report", headers=auth | JSON, content=raw
    )
    assert 200 == answer.status_code


async def test_the_openapi_document_matches_the_strict_models(api) -> None:
    """Labels allow no other keys, and every call with a body documents 400 and 422 answers."""
    document = (await api.client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    labels = schemas["EnrollRequest"]["properties"]["labels"]
    posts = {path: ops["post"] for path, ops in document["paths"].items() if "post" in ops}
    assert False is labels["additionalProperties"]
    assert "patternProperties" in labels
    assert {"boolean"} == {schemas["Scan"]["properties"]["rebootRequired"]["type"]}
    for path in (
        "/api/v1/enroll",
        "/api/v1/devices/{device_id}/report",
        "/api/v1/jobs/{job_id}/events",
    ):
        responses = posts[path]["responses"]
        assert {"400", "408", "413", "415", "422"} <= set(responses), path
        assert (
            "#/components/schemas/ErrorBody"
            == responses["400"]["content"]["application/json"]["schema"]["$ref"]
        )
        assert "requestBody" in posts[path]


def _scan_job(device: str) -> jobs.NewJob:
    return jobs.NewJob(
        id=f"scan-{device}",
        device_id=device,
        tenant="acme/retail",
        kind=JobKind.SCAN,
        revision="main@sha1:0123",
    )


# --- every position, by property ----------------------------------------------------------

VALID_REPORT: dict[str, Any] = {
    "facts": {
        "hostname": "web-01",
        "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
        "role": "server",
        "labels": {"env": "prod"},
        "agentVersion": "1.2.0",
        "uptime": 3600,
        "lastBootAt": "2026-11-20T08:00:00Z",
        "ipAddresses": ["10.0.0.1"],
        "custom": {"rack": "b4", "temp": 21.5, "spare": True, "slots": 4},
    },
    "scan": {
        "scannedAt": "2026-11-20T09:00:00Z",
        "rebootRequired": False,
        "missing": [{"id": "USN-1-1", "severity": "High", "sizeBytes": 10, "cves": ["CVE-1"]}],
        "installed": [{"id": "USN-0-1", "installedAt": "2026-10-01T00:00:00Z"}],
    },
    "inventory": {
        "kernel": "6.8.0",
        "packages": [{"name": "bash", "epoch": 0, "version": "5.2", "arch": "amd64"}],
    },
}
VALID_EVENT: dict[str, Any] = {
    "state": "failed",
    "seq": 3,
    "patches": [{"id": "KB1", "result": "failed", "reason": "disk full"}],
    "rebootRequired": False,
    "output": "exit 1",
}


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in leaf_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in leaf_paths(item, (*path, index))]
    return [path]


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


BODIES = [
    pytest.param(models.ReportRequest, VALID_REPORT, id="report"),
    pytest.param(models.JobEventRequest, VALID_EVENT, id="job-event"),
]
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


@pytest.mark.parametrize(("model", "body"), BODIES)
def test_the_valid_bodies_are_valid(model, body) -> None:
    """The bases of the properties below are accepted as they are."""
    assert isinstance(errors.parse_body(model, json.dumps(body).encode()), model)


@pytest.mark.parametrize(("model", "body"), BODIES)
@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(data=st.data(), number=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_json_number_anywhere_is_a_400(model, body, data, number) -> None:
    """NaN or ±Infinity in place of any value of a valid body is a 400, whatever its type."""
    path = data.draw(st.sampled_from(leaf_paths(body)))
    raw = json.dumps(replaced(body, path, number)).encode()
    with pytest.raises(errors.ApiError) as refused:
        errors.parse_body(model, raw)
    assert 400 == refused.value.status


# Fields that take several JSON types on purpose.
MIXED_FIELDS = {"custom", "epoch"}


@pytest.mark.parametrize(("model", "body"), BODIES)
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(data=st.data(), value=JSON_SCALARS)
def test_any_json_value_anywhere_is_a_model_or_a_located_422(model, body, data, value) -> None:
    """Any JSON scalar in place of any value yields the model or a 422 naming a field on
    that path (never another error); a value of another JSON type is never accepted."""
    path = data.draw(st.sampled_from(leaf_paths(body)))
    original = _at(body, path)
    outcome = _parse(model, replaced(body, path, value))
    same_kind = {_json_type(original), _json_type(value)} <= {"integer", "number"} or (
        _json_type(original) == _json_type(value)
    )
    if isinstance(outcome, errors.ApiError):
        assert (422, True) == (
            outcome.status,
            errors.field_path(path).startswith(outcome.details[0]["field"]),
        )
    else:
        assert isinstance(outcome, model)
        assert same_kind or value is None or bool(MIXED_FIELDS & set(path))


def _parse(model: type[Any], body: Any) -> Any:
    try:
        return errors.parse_body(model, json.dumps(body).encode())
    except errors.ApiError as exc:
        return exc


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def object_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every JSON object in `value` that has members."""
    found = [path] if isinstance(value, dict) and value else []
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    return found + [p for key, item in children for p in object_paths(item, (*path, key))]


def with_repeated(value: Any, at: tuple[Any, ...], name: str, here: tuple[Any, ...] = ()) -> str:
    """`value` as JSON text in which the object at `at` names its member `name` a second
    time (with the same value), last."""
    if isinstance(value, dict):
        members = [(k, with_repeated(v, at, name, (*here, k))) for k, v in value.items()]
        if here == at:
            members.append((name, with_repeated(value[name], at, name, (*here, name))))
        return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in members) + "}"
    if isinstance(value, list):
        items = (with_repeated(v, at, name, (*here, i)) for i, v in enumerate(value))
        return "[" + ", ".join(items) + "]"
    return json.dumps(value)


@pytest.mark.parametrize(("model", "body"), BODIES)
@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_a_name_written_twice_in_any_object_is_a_located_422(model, body, data) -> None:
    """A member named twice in any object of a valid body (pydantic would keep the second)
    is a 422 naming that member, whatever its value."""
    at = data.draw(st.sampled_from(object_paths(body)))
    name = data.draw(st.sampled_from(sorted(_at(body, at))))
    raw = with_repeated(body, at, name).encode()
    with pytest.raises(errors.ApiError) as refused:
        errors.parse_body(model, raw)
    assert (422, errors.field_path((*at, name))) == (
        refused.value.status,
        refused.value.details[0]["field"],
    )
    assert f"duplicate key {name!r}" in refused.value.details[0]["message"]


async def test_a_report_naming_facts_twice_changes_nothing(api) -> None:
    """`{"facts": {...}, "facts": {...}}`: refused naming `facts`, the device as it was."""
    device, auth = await api.enroll()
    before = snapshot(api)
    answer = await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth | JSON,
        content=b'{"facts": {"hostname": "web-01"}, "facts": {"hostname": "evil"}}',
    )
    assert (422, "facts") == (answer.status_code, answer.json()["details"][0]["field"])
    assert "written again at line 1, column 35" in answer.json()["message"]
    assert before == snapshot(api)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"hostname": "Bad Host/Name"}, "hostname", "'Bad Host/Name' is not a device name"),
        ({"labels": {"-site": "fra"}}, "labels.-site.[key]", "'-site' is not a label key"),
        ({"machineId": "short"}, "machineId", "'short' is not a machine id"),
    ],
    ids=["hostname", "label-key", "machine-id"],
)
async def test_a_value_of_the_wrong_form_is_told_what_it_should_be(
    api, change, field, words
) -> None:
    """A value that does not match its field's form is told what the form is, in words: a
    reader of the 422 (an agent's author, an operator with curl) never gets a regex."""
    body = (
        api.enroll_body(api.token("acme/retail", kind=tokens.TokenKind.ENROLLMENT), "web-01")
        | change
    )
    answer = await api.client.post("/api/v1/enroll", json=body)
    detail = answer.json()["details"][0]
    assert (422, field) == (answer.status_code, detail["field"])
    assert detail["message"].startswith(words)
    assert "^" not in answer.text


def test_every_pattern_of_a_request_or_a_policy_is_said_in_words() -> None:
    """Each pattern a request model or a policy kind checks has its sentence
    (`vocabularies.PATTERN_MEANINGS`), so no message falls back to quoting the regex."""
    from controller.kinds import KINDS  # noqa: PLC0415
    from controller.vocabularies import PATTERN_MEANINGS  # noqa: PLC0415

    def patterns(schema: Any) -> set[str]:
        if isinstance(schema, dict):
            found = {schema["pattern"]} if isinstance(schema.get("pattern"), str) else set()
            return found.union(*(patterns(value) for value in schema.values()))
        if isinstance(schema, list):
            return set().union(*(patterns(value) for value in schema))
        return set()

    request_models = [
        getattr(models, name)
        for name in dir(models)
        if name.endswith("Request") and isinstance(getattr(models, name), type)
    ]
    used = set().union(
        *(patterns(model.model_json_schema()) for model in [*request_models, *KINDS.values()])
    )
    assert set() == used - PATTERN_MEANINGS.keys()
