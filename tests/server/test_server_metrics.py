"""/metrics through the real app: process metrics without a token, the fleet metrics of a read
token's scope with one, parsed by prometheus_client's text-format parser."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from controller.runtime import fleet_metrics
from controller.server.metrics import FleetCache, Gauge, Metrics, render_families
from controller.store import jobs, schema, tokens
from controller.store import runs as run_store
from controller.store import status as status_store

if TYPE_CHECKING:
    from controller.store import Store
    from controller.testing import SettableClock

    from .conftest import Api

pytestmark = pytest.mark.anyio
WINDOWS = {"family": "windows", "name": "Windows Server", "version": "2022"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FLEET_FAMILIES = (
    "patchctl_devices",
    "patchctl_devices_pending_reboot",
    "patchctl_compliance_devices",
    "patchctl_pending_approvals",
    "patchctl_jobs",
    "patchctl_install_failures",
    "patchctl_reconcile_duration_seconds",
    "patchctl_reconcile_last_success_timestamp_seconds",
    "patchctl_applied_revision_age_seconds",
    "patchctl_policy_invalid",
    "patchctl_feed_age_seconds",
    "patchctl_feed_failing",
    "patchctl_notification_failing_channels",
    "patchctl_notification_dropped_events",
)


def parse(text: str) -> dict[str, Samples]:
    """Exposition text -> {family name: {(sample name, sorted labels): value}}."""
    return {
        family.name: {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples
        }
        for family in text_string_to_metric_families(text)
    }


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def build_fleet(api: Api) -> dict[str, str]:
    """Five devices in three tenants, with jobs, compliance, approvals, runs and channels;
    returns device name -> id. `now` ends at the clock's start + 1 day 3 hours."""
    start = api.clock()
    ids = {"web-03": (await api.enroll("web-03"))[0]}  # stale: last seen 27 hours before now
    api.clock.advance(hours=25)
    ids["web-02"] = (await api.enroll("web-02"))[0]  # offline: seen 2 hours before now
    api.clock.advance(hours=2)
    ids["web-01"], auth = await api.enroll("web-01")
    ids["win-01"] = (await api.enroll("win-01", tenant="acme/logistics", os=WINDOWS))[0]
    ids["db-01"] = (await api.enroll("db-01", tenant="globex"))[0]
    scan = {"scannedAt": api.clock().isoformat(), "rebootRequired": True, "missing": []}
    report = await api.client.post(
        f"/api/v1/devices/{ids['web-01']}/report", headers=auth, json={"scan": scan}
    )
    assert 200 == report.status_code, report.text
    now = api.clock()
    with api.store.write() as conn:
        for name, baseline, state in [
            ("web-01", "acme/servers", "non-compliant"),
            ("web-02", "acme/servers", "compliant"),
            ("web-03", "acme/servers", "compliant"),
            ("win-01", "acme/servers", "unknown"),
            ("db-01", "globex/all", "compliant"),
        ]:
            tenant = {"win-01": "acme/logistics", "db-01": "globex"}.get(name, "acme/retail")
            conn.execute(
                schema.compliance.insert().values(
                    device_id=ids[name],
                    baseline=baseline,
                    tenant=tenant,
                    state=state,
                    revision="main@sha1:bbb",
                    evaluated_at=now,
                    patches=[],
                )
            )
        status_store.set_status(
            conn,
            "plan",
            {
                "pendingApprovals": 4,
                "pendingApprovalsByDevice": {
                    ids["web-01"]: ["USN-1", "USN-2"],
                    ids["win-01"]: ["KB1"],
                    ids["db-01"]: ["USN-3"],
                },
            },
            now=now,
        )
        issued = [
            ("job-0", "web-01", jobs.JobKind.INSTALL),
            ("job-1", "web-01", jobs.JobKind.INSTALL),
            ("job-2", "web-01", jobs.JobKind.SCAN),
            ("job-g", "db-01", jobs.JobKind.INSTALL),
        ]
        jobs.insert_jobs(
            conn,
            [
                jobs.NewJob(
                    id=job_id,
                    device_id=ids[name],
                    tenant="globex" if name == "db-01" else "acme/retail",
                    kind=kind,
                    revision="main@sha1:bbb",
                )
                for job_id, name, kind in issued
            ],
            now=now,
        )
        for job_id in ("job-0", "job-g"):  # set up as the agent's event would end them
            conn.execute(
                schema.jobs.update().where(schema.jobs.c.id == job_id).values(state="failed")
            )
        for minutes_ago, revision, result, seconds in [
            (180, "main@sha1:aaa", "applied", 0.3),
            (120, "main@sha1:bbb", "applied", 2.0),
            (60, "main@sha1:bbb", "policy-invalid", 0.05),
            (30, "main@sha1:bbb", "applied", 40.0),
        ]:
            started = now - timedelta(minutes=minutes_ago)
            run_store.record_reconcile_run(
                conn,
                started_at=started,
                finished_at=started + timedelta(seconds=seconds),
                revision=revision,
                result=result,
            )
        status_store.set_status(
            conn,
            "conditions",
            [{"type": "Stalled", "status": "True", "reason": "PolicyInvalid", "message": "m"}],
            now=now,
        )
        for channel, kind, failures, dropped in [
            ("webhook:hooks.example.com:1a2b3c4d", "webhook", 3, 2),
            ("slack:SLACK_URL", "slack", 0, 1),
        ]:
            value = {"channel": channel, "kind": kind, "failures": failures, "dropped": dropped}
            status_store.set_status(conn, f"notify:{channel}", value, now=now)
        for feed, result, hours_ago in [
            ("*/osv", "ok", 1),
            ("acme/vendor", "failed", 3),
            ("globex/private", "ok", 1),
        ]:
            success = (now - timedelta(hours=hours_ago)).isoformat()
            value = {"result": result, "lastSuccessAt": success}
            status_store.set_status(conn, f"feed:{feed}", value, now=now)
    assert timedelta(hours=27) == now - start
    return ids


def by_labels(*rows: tuple[str, dict[str, str], float]) -> Samples:
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in rows}


def jobs_of(tenant: str, counts: dict[tuple[str, str], int]) -> list[tuple[str, Any, float]]:
    """Every kind x state of one tenant: zero unless given."""
    kinds = [k.value for k in jobs.JobKind]
    states = [s.value for s in jobs.JobState]
    return [
        ("patchctl_jobs", {"tenant": tenant, "kind": k, "state": s}, counts.get((k, s), 0))
        for k in kinds
        for s in states
    ]


def reconcile_histogram() -> Samples:
    """The four runs above: applied 0.3 s, 2 s, 40 s; policy-invalid 0.05 s."""
    durations = {"applied": [0.3, 2.0, 40.0], "policy-invalid": [0.05]}
    rows: list[tuple[str, dict[str, str], float]] = []
    for result, seconds in durations.items():
        for bound in fleet_metrics.RECONCILE_BUCKETS:
            within = sum(1 for s in seconds if s <= bound)
            rows.append(
                (
                    "patchctl_reconcile_duration_seconds_bucket",
                    {"result": result, "le": f"{bound:g}"},
                    within,
                )
            )
        rows += [
            (
                "patchctl_reconcile_duration_seconds_bucket",
                {"result": result, "le": "+Inf"},
                len(seconds),
            ),
            ("patchctl_reconcile_duration_seconds_sum", {"result": result}, sum(seconds)),
            ("patchctl_reconcile_duration_seconds_count", {"result": result}, len(seconds)),
        ]
    return by_labels(*rows)


def controller_wide(api: Api) -> dict[str, Samples]:
    """The families without a tenant label: every read token sees the same."""
    now = api.clock()
    last_success = now - timedelta(minutes=30) + timedelta(seconds=40)
    applied_since = now - timedelta(minutes=120) + timedelta(seconds=2)
    return {
        "patchctl_reconcile_duration_seconds": reconcile_histogram(),
        "patchctl_reconcile_last_success_timestamp_seconds": by_labels(
            ("patchctl_reconcile_last_success_timestamp_seconds", {}, last_success.timestamp())
        ),
        "patchctl_applied_revision_age_seconds": by_labels(
            ("patchctl_applied_revision_age_seconds", {}, (now - applied_since).total_seconds())
        ),
        "patchctl_policy_invalid": by_labels(("patchctl_policy_invalid", {}, 1)),
        "patchctl_notification_failing_channels": by_labels(
            ("patchctl_notification_failing_channels", {"kind": "slack"}, 0),
            ("patchctl_notification_failing_channels", {"kind": "webhook"}, 1),
        ),
        "patchctl_notification_dropped_events": by_labels(
            ("patchctl_notification_dropped_events_total", {"kind": "slack"}, 1),
            ("patchctl_notification_dropped_events_total", {"kind": "webhook"}, 2),
        ),
    }


async def scrape(api: Api, secret: str | None) -> dict[str, Samples]:
    answer = await api.client.get("/metrics", headers=bearer(secret) if secret else {})
    assert 200 == answer.status_code, answer.text
    assert "text/plain; version=0.0.4; charset=utf-8" == answer.headers["content-type"]
    return parse(answer.text)


async def test_a_partner_token_sees_its_clients_fleet(api: Api) -> None:
    """A partner's read token gets exact fleet metrics of every client, and nothing of another
    tenant."""
    await build_fleet(api)
    families = await scrape(api, api.token("acme"))
    retail, logistics = "acme/retail", "acme/logistics"
    expected = {
        "patchctl_devices": by_labels(
            *[
                ("patchctl_devices", {"tenant": logistics, "os": "windows", "state": s}, n)
                for s, n in [("online", 1), ("offline", 0), ("stale", 0)]
            ],
            *[
                ("patchctl_devices", {"tenant": retail, "os": "linux", "state": s}, 1)
                for s in ("online", "offline", "stale")
            ],
        ),
        "patchctl_devices_pending_reboot": by_labels(
            ("patchctl_devices_pending_reboot", {"tenant": retail, "os": "linux"}, 1)
        ),
        "patchctl_compliance_devices": by_labels(
            *[
                (
                    "patchctl_compliance_devices",
                    {"tenant": tenant, "baseline": "acme/servers", "state": state},
                    n,
                )
                for tenant, state, n in [
                    (logistics, "compliant", 0),
                    (logistics, "non-compliant", 0),
                    (logistics, "unknown", 1),
                    (retail, "compliant", 2),
                    (retail, "non-compliant", 1),
                    (retail, "unknown", 0),
                ]
            ]
        ),
        "patchctl_pending_approvals": by_labels(
            ("patchctl_pending_approvals", {"tenant": logistics}, 1),
            ("patchctl_pending_approvals", {"tenant": retail}, 2),
        ),
        "patchctl_jobs": by_labels(
            *jobs_of(
                retail,
                {("install", "failed"): 1, ("install", "pending"): 1, ("scan", "pending"): 1},
            )
        ),
        "patchctl_install_failures": by_labels(
            ("patchctl_install_failures_total", {"tenant": retail}, 1)
        ),
        "patchctl_feed_age_seconds": by_labels(
            ("patchctl_feed_age_seconds", {"tenant": "*", "feed": "osv"}, 3600),
            ("patchctl_feed_age_seconds", {"tenant": "acme", "feed": "vendor"}, 3 * 3600),
        ),
        "patchctl_feed_failing": by_labels(
            ("patchctl_feed_failing", {"tenant": "*", "feed": "osv"}, 0),
            ("patchctl_feed_failing", {"tenant": "acme", "feed": "vendor"}, 1),
        ),
        **controller_wide(api),
    }
    assert expected == {name: families[name] for name in FLEET_FAMILIES}


@pytest.mark.parametrize(
    ("tenant", "devices"),
    [
        pytest.param(
            "globex",
            {
                ("globex", "linux", "online"): 1,
                ("globex", "linux", "offline"): 0,
                ("globex", "linux", "stale"): 0,
            },
            id="another-partner",
        ),
        pytest.param(
            "acme/logistics",
            {
                ("acme/logistics", "windows", "online"): 1,
                ("acme/logistics", "windows", "offline"): 0,
                ("acme/logistics", "windows", "stale"): 0,
            },
            id="a-client",
        ),
    ],
)
async def test_a_token_sees_only_its_scope(
    api: Api, tenant: str, devices: dict[tuple[str, str, str], int]
) -> None:
    """Another partner's or a client's token counts only the devices of its own scope."""
    await build_fleet(api)
    families = await scrape(api, api.token(tenant))
    expected = by_labels(
        *[
            ("patchctl_devices", {"tenant": t, "os": os, "state": state}, n)
            for (t, os, state), n in devices.items()
        ]
    )
    assert expected == families["patchctl_devices"]


async def test_no_device_id_or_name_in_the_output(api: Api) -> None:
    """Neither a device id nor a device name appears anywhere in the fleet metrics."""
    ids = await build_fleet(api)
    text = (await api.client.get("/metrics", headers=bearer(api.token("acme")))).text
    assert "patchctl_devices{" in text
    assert [] == [word for pair in ids.items() for word in pair if word in text]


async def test_without_a_token_only_process_metrics(api: Api) -> None:
    """An unauthenticated scrape gets the process metrics, which parse, and no fleet metric."""
    await build_fleet(api)
    families = await scrape(api, None)
    assert "patchctl_reports" in families
    assert set() == set(FLEET_FAMILIES) & set(families)


@pytest.mark.parametrize(
    ("secret", "status"),
    [
        pytest.param("pcr_not-a-token", 401, id="unknown-token"),
        pytest.param(tokens.TokenKind.ENROLLMENT, 403, id="enrolment-token"),
    ],
)
async def test_a_bad_token_is_refused(api: Api, secret: Any, status: int) -> None:
    """A token that is not a valid read token is refused, not answered with process metrics."""
    if isinstance(secret, tokens.TokenKind):
        secret = api.token("acme", secret)
    answer = await api.client.get("/metrics", headers=bearer(secret))
    assert status == answer.status_code


async def test_scrapes_within_the_ttl_share_one_computation(
    api: Api, store: Store, clock: SettableClock
) -> None:
    """The fleet metrics of a scope are computed once per TTL: a new device shows after it."""
    now = [0.0]
    cache = FleetCache(store, clock=clock, ttl=15.0, monotonic=lambda: now[0])
    await api.enroll("web-01")
    first = parse(cache.render("acme"))
    await api.enroll("web-02")
    now[0] = 14.9
    cached = parse(cache.render("acme"))
    now[0] = 15.0
    fresh = parse(cache.render("acme"))
    online = ("patchctl_devices", (("os", "linux"), ("state", "online"), ("tenant", "acme/retail")))
    assert (1, 1, 2) == (
        first["patchctl_devices"][online],
        cached["patchctl_devices"][online],
        fresh["patchctl_devices"][online],
    )


def test_label_values_and_help_are_escaped() -> None:
    """Quotes, backslashes and newlines in label values and help text survive a parse."""
    tricky = 'a"b\\c\nd'
    family = fleet_metrics.Family(
        "patchctl_test",
        "gauge",
        "help with \\ and\nnewline",
        (fleet_metrics.Sample((("tenant", tricky),), 2.5),),
    )
    [parsed] = text_string_to_metric_families(render_families([family]))
    assert ("help with \\ and\nnewline", {"tenant": tricky}, 2.5) == (
        parsed.documentation,
        parsed.samples[0].labels,
        parsed.samples[0].value,
    )


ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "prometheus" / "patchctl-alerts.yml",
    ROOT / "examples" / "grafana" / "patchctl-fleet.json",
]
# Exported only by a process that runs the reconcile loop (the `api` fixture runs none).
WITH_A_CONTROLLER = {"patchctl_leader"}


def family_of(sample_name: str) -> str:
    """A histogram's sample name without its `_bucket`, `_sum` or `_count` suffix."""
    return re.sub(r"_(bucket|sum|count)$", "", sample_name)


async def test_examples_and_docs_name_the_exported_metrics(api: Api) -> None:
    """The example alert rules and dashboard query only exported metrics, and docs/metrics.md
    lists every exported one."""
    await build_fleet(api)
    answer = await api.client.get("/metrics", headers=bearer(api.token("acme")))
    exported = {
        sample.name
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    exported = {family_of(name) for name in exported}
    yaml.safe_load((ROOT / "examples" / "prometheus" / "patchctl-alerts.yml").read_text())
    json.loads((ROOT / "examples" / "grafana" / "patchctl-fleet.json").read_text())
    queried = {
        family_of(name)
        for path in EXAMPLES
        for name in re.findall(r"patchctl_[a-z_]+", path.read_text())
    }
    documented = set(
        re.findall(r"`(patchctl_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text())
    )
    assert (set(), set()) == (
        queried - exported - WITH_A_CONTROLLER,
        exported - documented,
    )


def test_large_counts_keep_every_digit() -> None:
    """A process counter or gauge past a million keeps its exact value (no `1.23457e+06`)."""
    metrics = Metrics()
    metrics.reports.inc(1_234_567, scan="stored")
    metrics.gauges.append(Gauge("patchctl_writer_items", "Writes committed.", lambda: 9_876_543))
    families = parse(metrics.render())
    assert (1_234_567, 9_876_543) == (
        families["patchctl_reports"][("patchctl_reports_total", (("scan", "stored"),))],
        families["patchctl_writer_items"][("patchctl_writer_items", ())],
    )
