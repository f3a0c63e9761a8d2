"""The dashboard's drill-down pages (issue 16, item 7): the alert browser and its saved views,
an alert, the devices with their filters, a device with explain's reasons, and a job, over the
real app on each engine and in a real headless Chromium against a real uvicorn server.

The fleet is the dashboard test's (`server/test_dashboard.py`): every alert raised 20 minutes
before NOW, the RebootPending one acknowledged here; win-02 last seen a day ago (offline); the
job j-web-01 has a stored output. The policy is the example repository, loaded as the reconcile
loop of `serve` loads it (`Reconciler.fetch_and_load`).
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from browser import Browser
from reports.reportfleet import FAILURE_REASON, NOW
from server.test_dashboard import (
    build_dashboard_fleet,
    chromium,
    free_port,
    read_token,
    submit_token,
)

from controller.runtime import explaining
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, ServiceOptions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, schema
from controller.testing import PolicyRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from fastapi import FastAPI

    from controller.core.desired import DesiredState

__all__ = ["chromium"]  # the session fixture, shared with the dashboard test

SCREENSHOTS_ENV = "PATCHCTL_DASHBOARD_SCREENSHOTS"  # a folder: also write the pages' PNGs there
OUTPUT = "<script>alert('x')</script> done\nAuthorization: Bearer pcr_abcdefghijklmnopqrstuvwx\n"
ALL_FOR_ACME = ["PolicyInvalid", "RebootPending", "InstallFailed"]


def build_page_fleet(store: Store) -> None:
    """The dashboard fleet with what the module docstring adds."""
    build_dashboard_fleet(store)
    with store.write() as conn:
        a, d, j = schema.alerts.c, schema.devices.c, schema.jobs.c
        conn.execute(
            schema.alerts.update()
            .where(a.kind == "RebootPending")
            .values(acknowledged_at=NOW - timedelta(minutes=5), acknowledged_by="token:ops")
        )
        conn.execute(
            schema.devices.update()
            .where(d.id == "d-win-02")
            .values(last_seen=NOW - timedelta(days=1))
        )
        conn.execute(schema.jobs.update().where(j.id == "j-web-01").values(output=OUTPUT))


def load_policy(tmp_path: Path) -> Reconciler:
    """A reconciler over the example repository with its head loaded, as `serve`'s loop has."""
    repo = PolicyRepo(tmp_path / "repo")
    repo.copy_example()
    repo.commit("the example repository")
    reconciler = Reconciler(
        store=None,  # type: ignore[arg-type] - never reconciles here: only loads the policy
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
    )
    _, loaded = reconciler.fetch_and_load()
    assert loaded.state is not None, loaded.errors
    reconciler.last_valid = loaded.state
    return reconciler


def build_app(store: Store, reconciler: Reconciler | None) -> FastAPI:
    """`serve`'s app; with `reconciler`, its controller knows the policy (the loop never starts:
    the controller is attached after the app is built, as `create_app` would not start it)."""
    app = create_app(store, Settings(clock=lambda: NOW))
    if reconciler is not None:
        options = ServiceOptions(
            watch_branch=False, notify=False, feeds=False, scheduled_reports=False
        )
        reconciler.store = store
        app.state.services.controller = Controller(reconciler, options)
    return app


@pytest.fixture
async def client(store: Store, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    build_page_fleet(store)
    app = build_app(store, load_policy(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://patchctl.test") as c:
            yield c


class Page(HTMLParser):
    """The rows (`data-alert`, `data-device`, `data-patch`, `data-job`), figures, links, the
    cells of each patch row and the visible text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.cells: dict[str, list[str]] = {}
        self.figures: dict[str, str] = {}
        self.links: list[str] = []
        self.text: list[str] = []
        self._figure: str | None = None
        self._patch: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr":
            for key in ("data-alert", "data-device", "data-patch", "data-job"):
                if key in found:
                    self.rows.setdefault(key.removeprefix("data-"), []).append(found[key])
            if "data-patch" in found:
                self._patch = found["data-patch"]
                self.cells[self._patch] = []
        if tag == "td" and self._patch is not None:
            self._cell = []
        if tag == "a" and "href" in found:
            self.links.append(found["href"])
        if "data-figure" in found:
            self._figure = found["data-figure"]
            self.figures[self._figure] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._patch is not None and self._cell is not None:
            self.cells[self._patch].append("".join(self._cell))
            self._cell = None
        if tag == "tr":
            self._patch = None
        if tag == "span":
            self._figure = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._figure is not None:
            self.figures[self._figure] += data


async def page(
    client: httpx.AsyncClient, store: Store, path: str, scope: str = "acme", **params: Any
) -> httpx.Response:
    auth = {"Authorization": f"Bearer {read_token(store, scope)}"}
    return await client.get(path, params=params or None, headers=auth)


# --- the alert browser ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "params", "expected"),
    [
        ("acme", {}, ALL_FOR_ACME),
        ("acme", {"type": "InstallFailed"}, ["InstallFailed"]),
        ("acme", {"type": ["InstallFailed", "PolicyInvalid"]}, ["PolicyInvalid", "InstallFailed"]),
        ("acme", {"severity": "warning"}, ["RebootPending"]),
        ("acme", {"state": "acknowledged"}, ["RebootPending"]),
        ("acme", {"state": "open"}, ["PolicyInvalid", "InstallFailed"]),
        ("acme", {"device": "win-01"}, ["RebootPending"]),
        ("acme", {"tenant": "acme/retail"}, ["PolicyInvalid", "InstallFailed"]),
        ("acme", {"since": "10m"}, []),
        ("acme", {"since": "1h", "until": "2026-12-07T06:00Z"}, ALL_FOR_ACME),
        ("acme", {"type": "", "device": "", "since": " "}, ALL_FOR_ACME),
        ("acme", {"severity": "critical", "state": "open", "tenant": "acme/retail"}, ["PolicyInvalid", "InstallFailed"]),
        ("acme/logistics", {}, ["PolicyInvalid", "RebootPending"]),
        ("other", {"type": "InstallFailed"}, ["InstallFailed"]),
    ],
    ids=[
        "all", "type", "types", "severity", "state", "states-open", "device", "tenant",
        "since-duration", "between", "empty-form-fields", "combined", "client", "other-partner",
    ],
)  # fmt: skip
async def test_the_alert_browser_filters(
    client: httpx.AsyncClient, store: Store, scope: str, params: dict[str, Any], expected: list[str]
) -> None:
    """The filters as query parameters keep the store's rows; the form shows them chosen."""
    answer = await page(client, store, "/alerts", scope, **params)
    assert 200 == answer.status_code, answer.text
    shown = Page(answer.text)
    assert expected == shown.rows.get("alert", [])
    assert str(len(expected)) == shown.figures["alert-count"]
    for value in [v for v in params.values() if isinstance(v, str) and v.strip()]:
        assert f'value="{value}" selected' in answer.text or f'value="{value}"' in answer.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "params", "status", "message"),
    [
        ("acme", {"severity": "high"}, 400, "severity: &#x27;high&#x27; is not one of info, warning, critical"),
        ("acme", {"state": "closed"}, 400, "state: &#x27;closed&#x27; is not one of open, acknowledged"),
        ("acme", {"type": "Nope"}, 400, "type: &#x27;Nope&#x27; is not one of Initiate"),
        ("acme", {"since": "yesterday"}, 400, "since: &#x27;yesterday&#x27; is not a date"),
        ("acme", {"since": "1h", "until": "2h"}, 400, "until: must be after since"),
        ("acme", {"device": ["a", "b"]}, 400, "device: give one value, not 2"),
        ("acme", {"colour": "red"}, 400, "colour: unknown filter; the filters are type, severity"),
        ("acme/retail", {"tenant": "acme/logistics"}, 403, "outside this token&#x27;s scope"),
        ("acme", {"tenant": "Not A Tenant"}, 400, "is not a tenant path"),
    ],
    ids=["severity", "state", "type", "since", "until", "device-twice", "unknown", "sibling", "malformed"],
)  # fmt: skip
async def test_a_bad_filter_is_refused_naming_it(
    client: httpx.AsyncClient,
    store: Store,
    scope: str,
    params: dict[str, Any],
    status: int,
    message: str,
) -> None:
    """A bad filter answers a page naming the field and what it accepts, and no alerts."""
    answer = await page(client, store, "/alerts", scope, **params)
    assert (status, [], True) == (
        answer.status_code,
        Page(answer.text).rows.get("alert", []),
        message in answer.text,
    )


@pytest.mark.anyio
async def test_saved_views_are_links(client: httpx.AsyncClient, store: Store) -> None:
    """ "Manage views" offers preset views as URLs, and the current view as its own link."""
    answer = await page(
        client, store, "/alerts", "acme", state="acknowledged", type="RebootPending"
    )
    links = Page(answer.text).links
    assert "/alerts?state=acknowledged&amp;type=RebootPending" in answer.text
    assert "/alerts?state=acknowledged&type=RebootPending" in links
    assert "/alerts?state=open&severity=critical" in links
    assert "/alerts?type=InstallFailed&since=7d" in links
    preset = await page(client, store, "/alerts", "acme", state="open", severity="critical")
    assert ["PolicyInvalid", "InstallFailed"] == Page(preset.text).rows["alert"]


# --- one alert --------------------------------------------------------------------------------


async def alert_id(store: Store, kind: str, device: str | None) -> int:
    a = schema.alerts.c
    with store.read() as conn:
        return int(
            conn.execute(
                schema.alerts.select()
                .with_only_columns(a.id)
                .where(
                    a.kind == kind,
                    a.device_id.is_(None) if device is None else a.device_id == device,
                )
            ).scalar_one()
        )


@pytest.mark.anyio
async def test_an_alert_page_links_to_its_device(client: httpx.AsyncClient, store: Store) -> None:
    """An alert of the scope shows every field and links to its device and like alerts."""
    number = await alert_id(store, "RebootPending", "d-win-01")
    answer = await page(client, store, f"/alerts/{number}", "acme/logistics")
    shown = Page(answer.text)
    assert 200 == answer.status_code
    assert {"/devices/d-win-01", "/alerts?type=RebootPending", "/alerts", "/devices", "/"} <= set(
        shown.links
    )
    text = " ".join("".join(shown.text).split())
    assert "Acknowledged bytoken:ops" in text
    assert "Patching completed and need to reboot." in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "kind", "device", "status"),
    [
        ("acme/retail", "RebootPending", "d-win-01", 404),
        ("acme", "InstallFailed", "d-db-01", 404),
        ("acme/retail", "PolicyInvalid", None, 200),
        ("other", "InstallFailed", "d-db-01", 200),
    ],
    ids=["sibling", "other-partner", "every-tenant", "own"],
)
async def test_a_foreign_alert_is_not_found(
    client: httpx.AsyncClient, store: Store, scope: str, kind: str, device: str | None, status: int
) -> None:
    """An alert outside the token's scope answers 404 and shows nothing of it."""
    answer = await page(client, store, f"/alerts/{await alert_id(store, kind, device)}", scope)
    assert status == answer.status_code
    if status == 404:
        assert (
            "No such alert" in answer.text,
            "win-01" in answer.text,
            "db-01" in answer.text,
        ) == (True, False, False)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/alerts/abc", "/alerts/99999", "/alerts/9999999999", "/alerts/" + "9" * 30]
)
async def test_an_unknown_alert_is_not_found(
    client: httpx.AsyncClient, store: Store, path: str
) -> None:
    """An id that is no alert's answers 404."""
    assert 404 == (await page(client, store, path)).status_code


# --- the devices ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "params", "expected"),
    [
        ("acme", {}, ["win-01", "win-02", "web-01", "web-02"]),
        ("acme", {"compliance": "non-compliant"}, ["win-01", "web-01"]),
        ("acme", {"compliance": "unknown"}, ["win-02"]),
        ("acme", {"compliance": "compliant"}, ["web-02"]),
        ("acme", {"compliance": "none"}, []),
        ("acme", {"online": "offline"}, ["win-02"]),
        ("acme", {"online": "online"}, ["win-01", "web-01", "web-02"]),
        ("acme", {"group": "all-windows"}, ["win-01", "win-02"]),
        ("acme", {"group": "all-windows", "online": "online", "compliance": "non-compliant"}, ["win-01"]),
        ("acme/retail", {"group": "all-linux"}, ["web-01", "web-02"]),
        ("acme", {"tenant": "acme/logistics", "compliance": ""}, ["win-01", "win-02"]),
        ("other", {}, ["db-01"]),
    ],
    ids=[
        "all", "non-compliant", "unknown", "compliant", "none", "offline", "online", "group",
        "combined", "partner-group-for-a-client", "tenant", "other-partner",
    ],
)  # fmt: skip
async def test_the_devices_filters(
    client: httpx.AsyncClient, store: Store, scope: str, params: dict[str, str], expected: list[str]
) -> None:
    """Compliance (worst verdict), online (two poll intervals) and group (the planner's rule)."""
    answer = await page(client, store, "/devices", scope, **params)
    assert 200 == answer.status_code, answer.text
    shown = Page(answer.text)
    assert (expected, str(len(expected))) == (
        shown.rows.get("device", []),
        shown.figures["device-count"],
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "params", "status", "message"),
    [
        ("acme/retail", {"group": "warehouse-windows"}, 400, "group: no group &#x27;warehouse-windows&#x27; in this scope"),
        ("acme", {"compliance": "bad"}, 400, "compliance: &#x27;bad&#x27; is not one of compliant"),
        ("acme", {"online": "yes"}, 400, "online: &#x27;yes&#x27; is not one of online, offline"),
        ("acme", {"os": "linux"}, 400, "os: unknown filter"),
        ("acme/retail", {"tenant": "acme"}, 403, "outside this token"),
    ],
    ids=["sibling-group", "compliance", "online", "unknown", "wider-tenant"],
)  # fmt: skip
async def test_a_bad_device_filter_is_refused(
    client: httpx.AsyncClient,
    store: Store,
    scope: str,
    params: dict[str, str],
    status: int,
    message: str,
) -> None:
    """A bad filter, or a group of another tenant, is refused naming it; no device is shown."""
    answer = await page(client, store, "/devices", scope, **params)
    assert (status, [], True) == (
        answer.status_code,
        Page(answer.text).rows.get("device", []),
        message in answer.text,
    )


@pytest.mark.anyio
async def test_the_group_filter_needs_the_policy(sqlite_store: Store) -> None:
    """Without a reconcile loop the page lists no groups and refuses a group filter."""
    build_page_fleet(sqlite_store)
    app = build_app(sqlite_store, None)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://patchctl.test"
        ) as client,
    ):
        listed = await page(client, sqlite_store, "/devices", "acme")
        refused = await page(client, sqlite_store, "/devices", "acme", group="all-windows")
        device = await page(client, sqlite_store, "/devices/d-win-01", "acme")
    assert (200, 'name="group"' in listed.text) == (listed.status_code, False)
    assert (400, True) == (refused.status_code, "no policy revision is loaded" in refused.text)
    assert ["-", "-"] == [cells[-1] for cells in Page(device.text).cells.values()]


# --- one device -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_device_page_explains_its_patches(
    client: httpx.AsyncClient, store: Store, tmp_path: Path
) -> None:
    """Patches with `patchctl explain`'s sentences, the device's jobs and alerts, linked."""
    answer = await page(client, store, "/devices/d-win-01", "acme/logistics")
    shown = Page(answer.text)
    desired: DesiredState = load_policy(tmp_path / "again").last_valid  # type: ignore[assignment]
    with store.read() as conn:
        explained = explaining.explanation_of(conn, desired, "d-win-01", now=NOW)
    assert explained is not None
    assert 200 == answer.status_code
    assert {p.patch_id: p.verdict for p in explained.patches} == {
        patch: cells[-1] for patch, cells in shown.cells.items()
    }
    assert ["KB1", "KB2"] == sorted(shown.cells)
    assert ["j-win-01", "j-h6", "j-h2"] == shown.rows["job"]
    assert ["RebootPending"] == shown.rows["alert"]
    assert {"/jobs/j-win-01", "/jobs/j-h6", "/alerts?device=d-win-01"} <= set(shown.links)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "path"),
    [
        ("acme/retail", "/devices/d-win-01"),
        ("acme", "/devices/d-db-01"),
        ("acme/retail", "/jobs/j-win-01"),
        ("acme", "/jobs/j-db-01"),
        ("acme", "/devices/nope"),
        ("acme", "/jobs/nope"),
    ],
    ids=["sibling-device", "other-device", "sibling-job", "other-job", "no-device", "no-job"],
)
async def test_a_foreign_device_or_job_is_not_found(
    client: httpx.AsyncClient, store: Store, scope: str, path: str
) -> None:
    """Another tenant's device or job answers 404, exactly as one that does not exist."""
    answer = await page(client, store, path, scope)
    assert (404, False, False) == (
        answer.status_code,
        "win-01" in answer.text,
        "db-01" in answer.text,
    )


# --- one job ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_job_page_shows_results_and_output(client: httpx.AsyncClient, store: Store) -> None:
    """Per-patch results with the agent's reason, the output escaped and redacted, links back."""
    answer = await page(client, store, "/jobs/j-web-01", "acme/retail")
    shown = Page(answer.text)
    assert 200 == answer.status_code
    assert {
        "USN-2": ["USN-2", "failed", FAILURE_REASON],
        "USN-3": ["USN-3", "installed", ""],
    } == shown.cells
    assert "<b>exit 100</b>" not in answer.text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; done" in answer.text
    assert ("pcr_abcdefghijklmnopqrstuvwx" in answer.text, "Bearer ***" in answer.text) == (
        False,
        True,
    )
    assert "/devices/d-web-01" in shown.links


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/alerts", "/alerts/1", "/devices", "/devices/d-win-01", "/jobs/j-win-01"]
)
async def test_every_page_loads_nothing_and_needs_a_session(
    client: httpx.AsyncClient, store: Store, path: str
) -> None:
    """No script, nothing external, the dashboard's CSP; without a token, the sign-in form."""
    answer = await page(client, store, path, "acme")
    anonymous = await client.get(path)
    assert [] == [
        s for s in ("<script", " src=", "http://", "https://", "@import") if s in answer.text
    ]
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert (401, True, []) == (
        anonymous.status_code,
        'name="token"' in anonymous.text,
        Page(anonymous.text).rows.get("device", []),
    )


# --- a real browser against a real server -----------------------------------------------------


@pytest.fixture
def server(sqlite_store: Store, tmp_path: Path) -> Iterator[str]:
    """The pages' app on a real loopback port (uvicorn in a thread, the clock fixed at NOW)."""
    build_page_fleet(sqlite_store)
    config = uvicorn.Config(
        build_app(sqlite_store, load_policy(tmp_path)),
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while thread.is_alive() and not running.started:
        thread.join(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{config.port}"
    running.should_exit = True
    thread.join(15)


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(chromium, tmp_path / "profile", width=1180)
    yield opened
    opened.close()


def click(browser: Browser, selector: str) -> None:
    """Follow the first link matching `selector`, as a person would."""
    browser.forget_events()
    browser.evaluate(f"document.querySelector({selector!r}).click(); true")
    browser.wait_for_load()


def shoot(browser: Browser, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        (Path(folder) / name).write_bytes(shot.read_bytes())


@pytest.mark.slow
def test_a_browser_drills_down_from_the_alerts(
    browser: Browser, server: str, sqlite_store: Store, tmp_path: Path
) -> None:
    """Chromium: the filter form, a saved view, an alert, its device, a job; a client's token
    meets 404 on its sibling's device."""
    browser.open(f"{server}/alerts")
    submit_token(browser, read_token(sqlite_store, "acme"))
    browser.open(f"{server}/alerts")
    assert ALL_FOR_ACME == Page(browser.dom()).rows["alert"]

    browser.forget_events()  # the form: choose a state, submit
    browser.evaluate(
        "document.querySelector('select[name=state] option[value=open]').selected = true;"
        "document.getElementById('filters').requestSubmit(); true"
    )
    browser.wait_for_load()
    assert "/alerts?state=open&device=&tenant=&since=&until=" == browser.evaluate(
        "location.pathname + location.search"
    )
    assert ["PolicyInvalid", "InstallFailed"] == Page(browser.dom()).rows["alert"]
    shoot(browser, tmp_path, "dashboard-alerts.png")

    click(browser, "a[data-view='Acknowledged, not resolved']")
    assert ["RebootPending"] == Page(browser.dom()).rows["alert"]
    click(browser, "tr[data-alert=RebootPending] td a")
    assert "Alert " in browser.evaluate("document.querySelector('h1').textContent")
    click(browser, "a[href='/devices/d-win-01']")
    shown = Page(browser.dom())
    assert (["KB1", "KB2"], ["RebootPending"]) == (sorted(shown.cells), shown.rows["alert"])
    shoot(browser, tmp_path, "dashboard-device.png")
    click(browser, "a[href='/jobs/j-h6']")
    assert ["F-j-h6-0", "P-j-h6-0"] == sorted(Page(browser.dom()).cells)
    browser.open(f"{server}/jobs/j-web-01")
    assert "&lt;script&gt;" in browser.dom()
    assert not browser.evaluate("!!document.querySelector('pre script')")
    shoot(browser, tmp_path, "dashboard-job.png")
    click(browser, "a[href='/devices']")
    assert ["win-01", "win-02", "web-01", "web-02"] == Page(browser.dom()).rows["device"]

    browser.forget_events()  # sign out; a client signs in and tries its sibling's device
    browser.evaluate("document.querySelector('form[action=\"/logout\"]').requestSubmit(); true")
    browser.wait_for_load()
    submit_token(browser, read_token(sqlite_store, "acme/retail"))
    browser.open(f"{server}/devices/d-win-01")
    assert "No such device" in browser.dom()
    assert "KB1" not in browser.dom()
    browser.open(f"{server}/devices")
    assert ["web-01", "web-02"] == Page(browser.dom()).rows["device"]
