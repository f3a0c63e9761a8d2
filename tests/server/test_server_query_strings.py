"""Query strings of the read, audit, report, plan and admin API over the real app on each
engine: an unknown parameter, a second value of a one-value parameter and a value outside the
parameter's type answer 422 naming it and change nothing; the agent calls are not checked
(`controller.server.queries`). The fleet is the report tests' (`reports/reportfleet.py`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from reports.reportfleet import build_fleet
from store.test_store_alert_filters import add_alerts

from controller.server import queries
from controller.store import tokens

if TYPE_CHECKING:
    from server.conftest import Api

pytestmark = pytest.mark.anyio

# The tags of the calls whose query strings are strict (`queries.strict_router`).
STRICT_TAGS = {"read", "admin"}


@pytest.fixture
def alert_ids(api: Api) -> dict[str, int]:
    build_fleet(api.store)
    return add_alerts(api.store)


def admin(api: Api) -> dict[str, str]:
    """An admin token of the partner: it reads the whole scope and writes."""
    return {"Authorization": f"Bearer {api.token('acme', tokens.TokenKind.ADMIN)}"}


async def strict_operations(api: Api) -> list[tuple[str, str]]:
    """(method, path with its path parameters filled in) of every call of the read, audit,
    report, plan and admin API, from the OpenAPI document."""
    document = (await api.client.get("/openapi.json")).json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if STRICT_TAGS & set(operation["tags"])
    ]


async def test_every_read_and_admin_call_refuses_an_unknown_parameter(api: Api) -> None:
    """Each call of the read, audit, report, plan and admin API answers 422 naming an unknown
    query parameter, whatever else it would have answered."""
    operations = await strict_operations(api)
    answered = {}
    for method, path in operations:
        answer = await api.client.request(method, path, params={"bogus": "1"}, headers=admin(api))
        fields = [d["field"] for d in answer.json().get("details", [])]
        answered[f"{method} {path}"] = (answer.status_code, fields)
    assert {"GET /api/v1/jobs", "GET /api/v1/plan", "POST /api/v1/alerts/1/acknowledge"} <= set(
        answered
    )
    assert {call: (422, ["bogus"]) for call in answered} == answered


@pytest.mark.parametrize(
    ("path", "params", "field", "words"),
    [
        ("/api/v1/jobs", {"state": "nope"}, "state", "'failed'"),
        ("/api/v1/jobs", {"stat": "failed"}, "stat", "unknown query parameter"),
        ("/api/v1/jobs", [("state", "failed"), ("state", "pending")], "state", "one value"),
        ("/api/v1/jobs", [("limit", "1"), ("limit", "2")], "limit", "not 2"),
        ("/api/v1/devices", {"retired": "maybe"}, "retired", "boolean"),
        ("/api/v1/devices", {"tenants": "acme/retail"}, "tenants", "the parameters are"),
        ("/api/v1/compliance", {"devices": "web-01"}, "devices", "unknown query parameter"),
        ("/api/v1/audit", {"sinse": "2026-12-01T00:00:00Z"}, "sinse", "since"),
        ("/api/v1/audit", {"since": "yesterday"}, "since", "datetime"),
        ("/api/v1/audit", {"since": "0001-01-01T00:00:00+05:00"}, "since", "1970-01-01"),
        ("/api/v1/alerts", {"until": "9999-12-31T23:00:00-05:00"}, "until", "9000-01-01"),
        ("/api/v1/audit", {"since": "0.38071851562309283"}, "since", "is a number"),
        ("/api/v1/alerts", {"until": "1764547200"}, "until", "ISO 8601"),
        ("/api/v1/status", {"tennant": "acme/retail"}, "tennant", "tenant"),
        ("/api/v1/patches", {"os": "solaris"}, "os", "'linux'"),
        ("/api/v1/patches", {"q": "openssl"}, "q", "search"),
        ("/api/v1/report", {"format": "pdf"}, "format[0]", "'markdown'"),
        ("/api/v1/report", {"formats": "csv"}, "formats", "format"),
        ("/api/v1/catalogue", {"version": "1"}, "version", "the parameters are none"),
        ("/api/v1/plan", {"base": "main", "head": "main", "bsae": "x"}, "bsae", "base"),
        ("/api/v1/devices/d-web-01/explain", {"tenants": "acme"}, "tenants", "tenant"),
        ("/api/v1/tokens", {"kind": "read"}, "kind", "unknown query parameter"),
    ],
    ids=[
        "job-state",
        "job-state-misspelt",
        "job-state-twice",
        "limit-twice",
        "retired",
        "devices-misspelt",
        "compliance-misspelt",
        "audit-misspelt",
        "audit-since",
        "audit-since-overflowing",
        "alerts-until-overflowing",
        "audit-since-unix-seconds",
        "alerts-until-unix-seconds",
        "status-misspelt",
        "patches-os",
        "patches-unknown",
        "report-format",
        "report-misspelt",
        "catalogue",
        "plan-misspelt",
        "explain-misspelt",
        "tokens",
    ],
)
async def test_a_bad_parameter_is_named(
    api: Api, alert_ids: dict[str, int], path: str, params: Any, field: str, words: str
) -> None:
    """A bad query parameter gets a 422 naming it and saying what is expected, and no rows."""
    answer = await api.client.get(path, params=params, headers=admin(api))
    body = answer.json()
    assert (422, "invalid-request") == (answer.status_code, body["error"])
    assert field in {d["field"] for d in body["details"]}
    assert words in body["message"] + str(body["details"])


@pytest.mark.parametrize(
    ("path", "params", "key", "expected"),
    [
        ("/api/v1/jobs", {"state": "failed"}, "jobs", ["j-web-01", "j-old"]),
        ("/api/v1/jobs", {"state": "failed", "limit": "1", "offset": "1"}, "jobs", ["j-old"]),
        ("/api/v1/devices", {"tenant": "acme/retail", "retired": "true"}, "devices", ["d-web-01",
                                                                                     "d-web-02"]),
        ("/api/v1/compliance", {"device": "win-02", "limit": "5", "offset": "0"}, "compliance",
         ["d-win-02"]),
    ],
    ids=["job-state", "paged", "devices", "compliance"],
)  # fmt: skip
async def test_the_declared_parameters_still_filter(
    api: Api, alert_ids: dict[str, int], path: str, params: Any, key: str, expected: list[str]
) -> None:
    """Filters, paging and flags that the calls declare keep working."""
    answer = await api.client.get(path, params=params, headers=admin(api))
    assert 200 == answer.status_code, answer.text
    rows = answer.json()[key]
    assert expected == [row.get("deviceId") if key == "compliance" else row["id"] for row in rows]


async def test_a_refused_write_changes_nothing(api: Api, alert_ids: dict[str, int]) -> None:
    """`POST …/acknowledge?reasn=x` is refused before it acknowledges anything."""
    path = f"/api/v1/alerts/{alert_ids['a1']}"
    refused = await api.client.post(
        f"{path}/acknowledge", params={"reasn": "x"}, headers=admin(api)
    )
    after = (await api.client.get(path, headers=admin(api))).json()
    assert (422, "open") == (refused.status_code, after["state"])


async def test_the_agent_calls_take_extra_parameters(api: Api) -> None:
    """An agent's poll with a query parameter this service does not know is answered as
    without it (agents of another version may send one)."""
    device, auth = await api.enroll()
    answer = await api.client.get(
        f"/api/v1/devices/{device}/jobs", params={"agentFeature": "x"}, headers=auth
    )
    assert (200, []) == (answer.status_code, answer.json()["jobs"])


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], []),
        ([("state", "a"), ("type", "b"), ("type", "c")], []),
        ([("stat", "a")], [("stat", "unknown query parameter; the parameters are state, type")]),
        ([("state", "a"), ("state", "b")], [("state", "give one value, not 2")]),
        ([("z", "1"), ("a", "1"), ("a", "2")], [("a", "unknown query parameter; the parameters "
                                                "are state, type"),
                                               ("z", "unknown query parameter; the parameters "
                                                "are state, type")]),
    ],
    ids=["none", "declared", "unknown", "repeated-scalar", "each-unknown-once-by-name"],
)  # fmt: skip
def test_query_problems(pairs: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    """Unknown names and repeated one-value parameters, one problem per name, sorted."""
    found = queries.query_problems(pairs, {"state": False, "type": True})
    assert expected == [(d["field"], d["message"]) for d in found]


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/alerts"])
async def test_a_time_without_an_offset_is_utc(
    api: Api, alert_ids: dict[str, int], path: str
) -> None:
    """`since=2026-12-06T06:00:00` means what `…Z` means on every listing (the audit trail
    answered 500: the store keeps aware times only)."""
    naive = await api.client.get(path, params={"since": "2026-12-06T06:00:00"}, headers=admin(api))
    aware = await api.client.get(path, params={"since": "2026-12-06T06:00:00Z"}, headers=admin(api))
    assert (200, aware.json()) == (naive.status_code, naive.json())
