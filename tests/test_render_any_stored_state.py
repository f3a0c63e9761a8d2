"""Every renderer of stored state renders whatever the store holds: reports (all formats),
status (its text, the tenant-scoped view of the read API and the dashboard), the listings, and
explain (and its text and JSON).

Property test: hypothesis writes random stored states into a real SQLite store — unknown patch
ids, missing fields, None severities, odd dates and odd JSON shapes where the columns are JSON —
and each renderer must produce its output without raising. Only the columns' own types and
constraints are respected (what a database could hold), not what today's writers produce.
Bounded: a fixed number of examples, no deadline per example.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.cli.alerts import ALL_COLUMNS as ALERTS
from controller.cli.devices import COLUMNS as DEVICES
from controller.cli.jobs import COLUMNS as JOBS
from controller.cli.jobs import job_lines
from controller.cli.listing import cell
from controller.cli.operate import explanation_lines, status_lines
from controller.core.compliance import ComplianceState
from controller.core.desired import DesiredState
from controller.core.explain import explain
from controller.core.observed import JobKind, JobState
from controller.core.patches import PatchRecord
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.reports import ReportFormat
from controller.reports import collect, render_summary, report_files
from controller.runtime import listings, observe, status
from controller.runtime.explaining import explanation_json
from controller.server.dashboard.page import render_dashboard
from controller.server.dashboard.view import read_dashboard
from controller.sources.loading import SourceFile, load_policy
from controller.store import Store, catalogue, open_store, schema

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # the example's windows-weekly is open
ROOT = Path(__file__).resolve().parent.parent
KNOWN = ("KB5044284", "USN-7123-1", "KB-NOSEV")
DEVICE_IDS = ("d-1", "d-2", "d-3")
TENANTS = ("acme", "acme/retail", "acme/logistics")

# st.datetimes bounds are naive by its API; the instants it draws carry UTC.
instants = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
patch_ids = st.sampled_from((*KNOWN, "UNKNOWN-1", "kb5044284", "x" * 200, "KB 1"))
odd_dates = st.one_of(
    st.none(),
    instants.map(datetime.isoformat),
    st.sampled_from(("", "yesterday", "2026-13-45", "2026-11-29", "2026-11-29T01:30")),
    st.integers(),
)
words = st.one_of(
    st.none(),
    st.sampled_from(("High", "critical", "weird", "", "None", "<b>x</b>", "a,b\n")),
    st.integers(),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), words)
id_lists = st.one_of(st.lists(patch_ids, max_size=4), json_scalars)


def entries() -> st.SearchStrategy[Any]:
    entry = st.fixed_dictionaries(
        {"id": patch_ids},
        optional={
            "severity": words,
            "title": json_scalars,
            "kb": json_scalars,
            "details": st.one_of(json_scalars, st.fixed_dictionaries({"severity": words})),
            "installedAt": odd_dates,
        },
    )
    return st.one_of(entry, json_scalars)


patch_documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "missing": st.one_of(st.lists(entries(), max_size=4), json_scalars),
            "installed": st.one_of(st.lists(entries(), max_size=3), json_scalars),
        },
    ),
    st.lists(st.one_of(entries(), st.fixed_dictionaries({"id": patch_ids, "state": words}))),
    json_scalars,
)
compliance_documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "scannedAt": odd_dates,
            "counts": st.one_of(
                st.dictionaries(st.sampled_from(("installed", "missing", "x")), json_scalars),
                json_scalars,
            ),
            "missing": id_lists,
            "failed": id_lists,
            "pendingReboot": id_lists,
            "rejected": id_lists,
        },
    ),
    json_scalars,
)
results = st.one_of(
    st.dictionaries(
        patch_ids,
        st.one_of(
            st.fixed_dictionaries(
                {}, optional={"result": words.map(str), "reason": json_scalars}
            ).map(lambda d: d | ({"result": "failed"} if len(d) == 1 else {})),
            json_scalars,
        ),
        max_size=3,
    ),
    st.lists(json_scalars, max_size=2),
    json_scalars,
)


def maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A dict with any subset of `fields`, or a JSON scalar in its place."""
    return st.one_of(json_scalars, st.fixed_dictionaries({}, optional=fields))


windows_by_key = st.one_of(
    json_scalars, st.dictionaries(st.text(max_size=3), maybe(open=json_scalars, start=odd_dates))
)
STATUS_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "source": maybe(
        lastAppliedRevision=json_scalars,
        lastAttemptedRevision=json_scalars,
        errors=st.one_of(json_scalars, st.lists(json_scalars, max_size=2)),
    ),
    "catalogue": maybe(version=json_scalars, records=json_scalars),
    "conditions": st.one_of(
        json_scalars,
        st.lists(maybe(type=json_scalars, status=json_scalars, reason=json_scalars), max_size=3),
    ),
    "plan": maybe(
        pendingApprovals=json_scalars,
        nextWindows=windows_by_key,
        pendingApprovalsByDevice=st.one_of(
            json_scalars, st.dictionaries(st.sampled_from(DEVICE_IDS), id_lists, max_size=2)
        ),
    ),
    "trend:*": maybe(
        points=st.one_of(json_scalars, st.dictionaries(odd_dates.map(str), json_scalars))
    ),
}


@st.composite
def stored_states(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Rows for the tables the renderers read."""
    devices = [
        {
            "id": device_id,
            "tenant": draw(st.sampled_from(TENANTS)),
            "name": f"host-{n}",
            "hostname": f"HOST-{n}",
            "os_family": draw(st.sampled_from(("windows", "linux", "", "beos"))),
            "os_name": draw(st.text(max_size=10)),
            "os_version": draw(st.text(max_size=6)),
            "role": draw(st.sampled_from(("server", "gateway", "", "desktop"))),
            "labels": draw(
                st.one_of(
                    st.dictionaries(st.sampled_from(("env", "role")), st.text(max_size=5)),
                    st.dictionaries(st.just("env"), json_scalars),
                    json_scalars,
                )
            ),
            "facts": {},
            "agent_version": "1",
            "poll_interval": draw(st.integers(min_value=1, max_value=86400)),
            "enrolled_at": draw(instants),
            "last_seen": draw(instants),
            "last_scan_at": draw(st.none() | instants),
            "reboot_required": draw(st.none() | st.booleans()),
        }
        for n, device_id in enumerate(DEVICE_IDS[: draw(st.integers(1, len(DEVICE_IDS)))])
    ]
    tenant_of = {d["id"]: d["tenant"] for d in devices}
    ids = list(tenant_of)
    patch_states = [
        {
            "device_id": device_id,
            "source": source,
            "observed_at": draw(instants),
            "patches": draw(patch_documents),
        }
        for device_id in ids
        for source in draw(st.sets(st.sampled_from(("agent", "feed"))))
    ]
    compliance = [
        {
            "device_id": device_id,
            "baseline": baseline,
            "tenant": tenant_of[device_id],
            "state": draw(st.sampled_from([s.value for s in ComplianceState])),
            "revision": draw(st.sampled_from(("main@sha1:abc", ""))),
            "evaluated_at": draw(instants),
            "patches": draw(compliance_documents),
        }
        for device_id in ids
        for baseline in draw(
            st.sets(st.sampled_from(("Baseline acme/windows-servers", "Baseline x", "")))
        )
    ]
    jobs = [
        {
            "id": f"job-{n}",
            "device_id": draw(st.sampled_from(ids)),
            "tenant": draw(st.sampled_from(TENANTS)),
            "kind": draw(st.sampled_from([k.value for k in JobKind])),
            "patch_ids": draw(id_lists),
            "payload": draw(maybe(occasion=words, reason=json_scalars)),
            "state": draw(st.sampled_from([s.value for s in JobState])),
            "revision": "main@sha1:abc",
            "window_key": draw(st.sampled_from((None, "acme/windows-weekly@x", "@", "odd"))),
            "deadline": draw(st.none() | instants),
            "created_at": draw(instants),
            "updated_at": draw(instants),
            "delivered_at": None,
            "deliveries": 0,
            "finished_at": draw(st.none() | instants),
            "reboot_required": draw(st.none() | st.booleans()),
            "results": draw(results),
            "output": draw(st.none() | st.text(max_size=10)),
            "started_at": draw(st.none() | instants),
            "run_timeout": draw(st.none() | st.integers(min_value=0, max_value=10**6)),
            "end_reason": draw(st.none() | st.sampled_from(("timed-out", "odd"))),
            "end_state": None,
        }
        for n in range(draw(st.integers(0, 4)))
    ]
    alerts = [
        {
            "kind": draw(st.sampled_from(("JobTimedOut", "Odd", ""))),
            "severity": draw(st.sampled_from(("critical", "info", "odd"))),
            "message": draw(st.text(max_size=20)),
            "tenant": draw(st.none() | st.sampled_from(TENANTS)),
            "device_id": draw(st.none() | st.sampled_from(ids)),
            "details": draw(st.one_of(st.just({}), st.fixed_dictionaries({"job": words}))),
            "dedupe_key": f"k-{n}",
            "created_at": draw(instants),
        }
        for n in range(draw(st.integers(0, 3)))
    ]
    status_rows = [
        {"key": key, "value": draw(value), "updated_at": NOW}
        for key, value in STATUS_VALUES.items()
        if draw(st.booleans())
    ]
    return {
        "devices": devices,
        "patch_states": patch_states,
        "compliance": compliance,
        "jobs": jobs,
        "alerts": alerts,
        "status": status_rows,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One real SQLite store with a small catalogue (one record without a severity)."""
    opened = open_store(f"sqlite:///{tmp_path_factory.mktemp('any-state') / 'state.db'}")
    with opened.write() as conn:
        conn.execute(
            schema.tenants.insert(),
            [
                {"path": t, "parent": t.rpartition("/")[0] or None, "created_at": NOW}
                for t in TENANTS
            ],
        )
    catalogue.upsert_records(
        opened,
        [
            PatchRecord(
                id="KB5044284",
                os=OsFamily.WINDOWS,
                vendor="microsoft",
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL,
                released=date(2026, 10, 8),
            ),
            PatchRecord(id="USN-7123-1", os=OsFamily.LINUX, severity=Severity.IMPORTANT),
            PatchRecord(id="KB-NOSEV"),
        ],
        now=NOW,
    )
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def desired() -> DesiredState:
    """The example repository's policy, loaded from this checkout's files."""
    files = [
        SourceFile(str(path.relative_to(ROOT)), path.read_bytes())
        for folder in ("policies", "inventory")
        for path in sorted((ROOT / folder).rglob("*.yaml"))
    ]
    loaded = load_policy(files, revision="main@sha1:example")
    assert loaded.state is not None, [str(p) for p in loaded.problems]
    return loaded.state


def replace_state(store: Store, state: dict[str, list[dict[str, Any]]]) -> None:
    with store.write() as conn:
        for table in ("alerts", "jobs", "compliance", "patch_states", "devices"):
            conn.execute(schema.metadata.tables[table].delete())
        conn.execute(schema.status.delete())
        for table, rows in state.items():
            if rows:
                conn.execute(schema.metadata.tables[table].insert(), rows)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(state=stored_states())
def test_every_renderer_renders_any_stored_state(
    store: Store, desired: DesiredState, state: dict[str, list[dict[str, Any]]]
) -> None:
    """Reports in every format, status, the listings and explain render any stored state."""
    replace_state(store, state)
    with store.read() as conn:
        for tenant in (None, "acme", "acme/retail"):
            data = collect(conn, tenant=tenant, now=NOW, revision=None, keep_trend=False)
            files = report_files(data, tuple(ReportFormat))
            assert all(isinstance(content, bytes) for content in files.values())
            render_summary(data)
        summary = status.summary(conn, now=NOW)
        status_lines(summary)
        json.dumps(summary, default=str)
        for scope in ("acme", "acme/retail"):
            json.dumps(status.tenant_view(conn, scope=scope), default=str)
            render_dashboard(read_dashboard(conn, scope=scope, now=NOW))
        json.dumps(status.list_alerts(conn), default=str)
        for scope in (None, "acme"):
            pages = (
                listings.devices(conn, scope=scope, now=NOW, limit=50),
                listings.jobs(conn, scope=scope, limit=50),
                listings.alerts(conn, scope=scope, limit=50),
            )
            for page in pages:
                json.dumps(page.rows)
                for row in page.rows:
                    assert all(isinstance(cell(v(row)), str) for _, v in (*DEVICES, *JOBS, *ALERTS))
            for row in pages[1].rows:
                job_lines(listings.job(conn, row["id"], scope=scope) or {})
        observed = observe.observe(conn, now=NOW)
    for device in observed.devices:
        result = explain(desired, observed, device, now=NOW)
        answer = explanation_json(result, desired.revision)
        explanation_lines(json.loads(json.dumps(answer)))
    assert len(state["devices"]) == len(observed.devices)
