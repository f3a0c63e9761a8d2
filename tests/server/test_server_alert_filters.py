"""`GET /api/v1/alerts` filters and `GET /api/v1/alerts/{id}` over the real app on each engine:
the store's filters as query parameters, validated strictly, scoped to the token (issue 16,
item 7). The alerts are the store test's table (`store/test_store_alert_filters.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from reports.reportfleet import NOW, build_fleet
from store.test_store_alert_filters import add_alerts

from controller.store import schema

if TYPE_CHECKING:
    from server.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
def ids(api: Api) -> dict[str, int]:
    build_fleet(api.store)
    return add_alerts(api.store)


async def get(api: Api, path: str, tenant: str, params: Any = None) -> Any:
    auth = {"Authorization": f"Bearer {api.token(tenant)}"}
    return await api.client.get(path, params=params, headers=auth)


@pytest.mark.parametrize(
    ("tenant", "params", "expected"),
    [
        ("acme", {}, ["a7", "a5", "a4", "a3", "a2", "a1"]),
        ("acme/retail", {}, ["a7", "a4", "a1"]),
        ("acme", {"type": "InstallFailed"}, ["a3", "a1"]),
        ("acme", [("type", "InstallFailed"), ("type", "RebootPending")], ["a3", "a2", "a1"]),
        ("acme", {"severity": "critical"}, ["a4", "a3", "a1"]),
        ("acme", {"state": "open"}, ["a5", "a4", "a1"]),
        ("acme", {"state": "acknowledged"}, ["a2"]),
        ("acme", [("state", "open"), ("state", "acknowledged")], ["a5", "a4", "a2", "a1"]),
        ("acme", {"open": "true"}, ["a5", "a4", "a2", "a1"]),
        ("acme", {"device": "win-01"}, ["a3", "a2"]),
        ("acme/retail", {"device": "win-01"}, []),
        ("acme", {"tenant": "acme/logistics"}, ["a4", "a3", "a2"]),
        ("acme", {"since": "2026-12-06T06:00:00Z"}, ["a7", "a5", "a4", "a3"]),
        ("acme", {"since": "2026-12-06T06:00:00"}, ["a7", "a5", "a4", "a3"]),
        ("acme", {"until": "2026-12-06T06:00:00+00:00"}, ["a2", "a1"]),
        (
            "acme",
            {"type": "InstallFailed", "state": "resolved", "tenant": "acme/logistics"},
            ["a3"],
        ),
        ("acme", {"severity": "critical", "state": "open", "limit": "1", "offset": "1"}, ["a1"]),
    ],
    ids=[
        "partner",
        "client",
        "type",
        "types",
        "severity",
        "open",
        "acknowledged",
        "states",
        "legacy-open",
        "device",
        "sibling-device",
        "tenant",
        "since",
        "since-naive-is-utc",
        "until",
        "combined",
        "paged",
    ],
)
async def test_filters_as_query_parameters(
    api: Api, ids: dict[str, int], tenant: str, params: Any, expected: list[str]
) -> None:
    """Each filter, repeated values and combinations answer the store's rows."""
    answer = await get(api, "/api/v1/alerts", tenant, params)
    assert 200 == answer.status_code, answer.text
    assert expected == [a["message"] for a in answer.json()["alerts"]]


async def test_an_alert_carries_its_state_and_device(api: Api, ids: dict[str, int]) -> None:
    """The listing's entries have `state`, `deviceName` and the acknowledgement columns."""
    answer = await get(api, "/api/v1/alerts", "acme/logistics", {"state": "acknowledged"})
    (alert,) = answer.json()["alerts"]
    assert {
        "id": ids["a2"],
        "state": "acknowledged",
        "deviceName": "win-01",
        "deviceId": "d-win-01",
        "acknowledgedBy": "token:ops",
        "acknowledgedAt": (NOW.replace(day=5, minute=5)).isoformat(),
        "resolvedAt": None,
    } == {k: alert[k] for k in ("id", "state", "deviceName", "deviceId", "acknowledgedBy",
                                "acknowledgedAt", "resolvedAt")}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "status", "field", "words"),
    [
        ({"type": "InstalFailed"}, 422, "type[0]", "InstallFailed"),
        ({"severity": "high"}, 422, "severity[0]", "critical"),
        ({"state": "closed"}, 422, "state[0]", "acknowledged"),
        ({"since": "yesterday"}, 422, "since", "datetime"),
        ({"sevrity": "critical"}, 422, "sevrity", "unknown query parameter"),
        (
            {"since": "2026-12-06T00:00:00Z", "until": "2026-12-05T00:00:00Z"},
            422,
            "until",
            "must be after since",
        ),
        ({"device": "x" * 254}, 422, "device", "at most 253 characters"),
        ({"tenant": "acme/logistics"}, 403, None, "outside this token's scope"),
    ],
    ids=["type", "severity", "state", "since", "unknown", "until-before-since", "device", "tenant"],
)
async def test_bad_filters_name_the_parameter(
    api: Api,
    ids: dict[str, int],
    params: dict[str, str],
    status: int,
    field: str | None,
    words: str,
) -> None:
    """A bad filter gets a 4xx naming the parameter and what is expected, and no alerts."""
    answer = await get(api, "/api/v1/alerts", "acme/retail", params)
    body = answer.json()
    assert (status, False) == (answer.status_code, "alerts" in body)
    assert words in str(body)
    if field is not None:
        assert field in {d["field"] for d in body["details"]}


@pytest.mark.parametrize(
    ("message", "tenant", "status"),
    [
        ("a1", "acme/retail", 200),
        ("a1", "acme", 200),
        ("a1", "acme/logistics", 404),
        ("a6", "acme", 404),
        ("a4", "acme/retail", 200),
    ],
    ids=["own", "partner", "sibling", "other-partner", "every-tenant"],
)
async def test_one_alert_by_id(
    api: Api, ids: dict[str, int], message: str, tenant: str, status: int
) -> None:
    """`GET /api/v1/alerts/{id}`: the alert in its scope, 404 (saying nothing) outside it."""
    answer = await get(api, f"/api/v1/alerts/{ids[message]}", tenant)
    assert status == answer.status_code
    if status == 200:
        assert (ids[message], message) == (answer.json()["id"], answer.json()["message"])
    else:
        assert message not in answer.text


@pytest.mark.parametrize(
    ("alert_id", "status"), [("0", 422), ("2147483648", 422), ("2147483647", 404), ("x", 422)]
)
async def test_an_alert_id_out_of_range(
    api: Api, ids: dict[str, int], alert_id: str, status: int
) -> None:
    """An id that no alert can have is refused; the largest possible one is merely not found."""
    assert status == (await get(api, f"/api/v1/alerts/{alert_id}", "acme")).status_code


async def test_a_repository_alert_keeps_its_errors(api: Api, ids: dict[str, int]) -> None:
    """A PolicyInvalid alert by id shows the error count, not the errors (as the listing)."""
    with api.store.write() as conn:
        conn.execute(
            schema.alerts.update()
            .where(schema.alerts.c.id == ids["a4"])
            .values(details={"revision": "main@sha1:b", "errors": ["policies/x.yaml:1:1: secret"]})
        )
    one = (await get(api, f"/api/v1/alerts/{ids['a4']}", "acme/retail")).json()
    listed = (await get(api, "/api/v1/alerts", "acme/retail", {"type": "PolicyInvalid"})).json()
    assert {"revision": "main@sha1:b", "commit": None, "errorCount": 1} == one["details"]
    assert [one] == listed["alerts"]


async def test_the_filters_are_in_the_openapi_document(api: Api) -> None:
    """The OpenAPI document lists every filter, the vocabularies as enums, and the id route."""
    document = (await api.client.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/alerts"]["get"]["parameters"]}
    assert {"type", "severity", "state", "device", "since", "until", "open", "tenant", "limit",
            "offset"} == set(parameters)  # fmt: skip
    state = parameters["state"]["schema"]["anyOf"][0]["items"]
    assert "/api/v1/alerts/{alert_id}" in document["paths"]
    assert ["open", "acknowledged", "resolved"] == document["components"]["schemas"][
        state["$ref"].rpartition("/")[2]
    ]["enum"]
