"""The dashboard at `/`: sign-in, tenant scoping and the widgets' numbers, over the real app on
each engine, and in a real headless Chromium against a real uvicorn server.

The fleet is the report tests' (`reports/reportfleet.py`) plus a month of install history, a
job in flight, pending approvals as the last plan recorded them, alerts and conditions:

| scope          | verdicts (c/nc/u) | installed | failed | pending | approvals | alerts seen             |
|----------------|-------------------|-----------|--------|---------|-----------|-------------------------|
| acme           | 1 / 2 / 1         | 19        | 3      | 2       | 3         | all but `other`'s       |
| acme/retail    | 1 / 1 / 0         | 8         | 1      | 0       | 1         | InstallFailed + global  |
| acme/logistics | 0 / 1 / 1         | 11        | 2      | 2       | 2         | RebootPending + global  |
"""

from __future__ import annotations

import os
import shutil
import threading
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from browser import Browser, find_or_install_chromium
from reports.reportfleet import DEVICES, NOW, REVISION, build_fleet

from controller.runtime.reconcile import Outcome, conditions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, jobs, schema, tokens
from controller.store import alerts as alert_store
from controller.store import status as status_store
from controller.store.job_states import JobKind
from controller.testing import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_ENV = "PATCHCTL_DASHBOARD_SCREENSHOT"  # a path: also write the screenshot there
PENDING_BY_DEVICE = {"d-web-01": ["USN-9"], "d-win-01": ["KB7", "KB8"], "d-db-01": ["DSA-9"]}
HISTORY = (  # job id, device, days before NOW, installed, failed
    ("j-h1", "d-web-02", 27, 3, 0),
    ("j-h2", "d-win-01", 21, 4, 1),
    ("j-h3", "d-web-02", 14, 2, 0),
    ("j-h4", "d-win-02", 9, 5, 0),
    ("j-h5", "d-web-01", 6, 2, 0),
    ("j-h6", "d-win-01", 4, 1, 1),
)
ALERTS = (  # kind, severity, device, message
    ("InstallFailed", "critical", "d-web-01", "USN-2 failed on web-01: dpkg error"),
    ("RebootPending", "warning", "d-win-01", "Patching completed and need to reboot."),
    ("InstallFailed", "critical", "d-db-01", "DSA-1 failed on db-01"),
    ("PolicyInvalid", "critical", None, "main@sha1:bbbb does not validate (1 error(s))"),
)


# --- the fleet ----------------------------------------------------------------------------


def build_dashboard_fleet(store: Store, *, by_device: bool = True) -> None:
    """The report fleet plus what only the dashboard shows (see the module docstring)."""
    build_fleet(store)
    with store.write() as conn:
        for job_id, device_id, days, installed, failed in HISTORY:
            finished = NOW - timedelta(days=days)
            results = {f"P-{job_id}-{n}": {"result": "installed"} for n in range(installed)}
            results |= {
                f"F-{job_id}-{n}": {"result": "failed", "reason": "exit 1"} for n in range(failed)
            }
            conn.execute(
                schema.jobs.insert(), [_finished_job(job_id, device_id, finished, results)]
            )
        jobs.insert_jobs(
            conn,
            [
                jobs.NewJob(
                    id="j-in-flight",
                    device_id="d-win-02",
                    tenant="acme/logistics",
                    kind=JobKind.INSTALL,
                    revision=REVISION,
                    patch_ids=("KB10", "KB11"),
                    payload={},
                )
            ],
            now=NOW - timedelta(minutes=30),
        )
        for kind, severity, device_id, message in ALERTS:
            alert_store.add_alert(
                conn,
                alert_store.NewAlert(
                    kind=kind,
                    severity=severity,
                    message=message,
                    tenant=DEVICES[device_id][0] if device_id else None,
                    device_id=device_id,
                    dedupe_key=f"{kind}:{device_id}",
                ),
                now=NOW - timedelta(minutes=20),
            )
        plan: dict[str, Any] = {"revision": REVISION, "pendingApprovals": 4}
        if by_device:
            plan["pendingApprovalsByDevice"] = PENDING_BY_DEVICE
        status_store.set_status(conn, "plan", plan, now=NOW - timedelta(minutes=10))
        outcome = Outcome("applied", REVISION, REVISION, NOW - timedelta(minutes=10), 120)
        status_store.set_status(conn, "conditions", conditions(outcome), now=outcome.started_at)
        source = {"lastAppliedRevision": REVISION, "lastAttemptedRevision": REVISION, "errors": []}
        status_store.set_status(conn, "source", source, now=outcome.started_at)
        points = {(NOW.date() - timedelta(days=n)).isoformat(): 26.0 - n for n in range(14, 0, -1)}
        status_store.set_status(conn, "trend:acme", {"points": points}, now=NOW - timedelta(days=1))


def _finished_job(
    job_id: str, device_id: str, finished: Any, results: dict[str, Any]
) -> dict[str, Any]:
    failed = any(r["result"] == "failed" for r in results.values())
    return {
        "id": job_id,
        "device_id": device_id,
        "tenant": DEVICES[device_id][0],
        "kind": "install",
        "patch_ids": sorted(results),
        "payload": {},
        "state": "failed" if failed else "succeeded",
        "revision": REVISION,
        "window_key": None,
        "deadline": None,
        "created_at": finished - timedelta(hours=1),
        "updated_at": finished,
        "delivered_at": finished - timedelta(minutes=50),
        "deliveries": 1,
        "finished_at": finished,
        "reboot_required": None,
        "results": results,
        "output": None,
    }


def read_token(store: Store, tenant: str, kind: tokens.TokenKind = tokens.TokenKind.READ) -> str:
    with store.write() as conn:
        return tokens.create_token(conn, kind=kind, tenant=tenant, now=NOW).secret


# --- reading a page -----------------------------------------------------------------------


class Figures(HTMLParser):
    """The page's `data-figure` texts, per-baseline cells, alert kinds and visible text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.baselines: dict[str, dict[str, str]] = {}
        self.alerts: list[str] = []
        self.widgets: list[str] = []
        self.text: list[str] = []
        self._open: list[tuple[str, str | None]] = []  # (what, key) of elements being read
        self._baseline: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-widget" in found:
            self.widgets.append(str(found["data-widget"]))
        if "data-baseline" in found:
            self._baseline = found["data-baseline"]
            self.baselines[str(self._baseline)] = {}
        if "data-alert" in found:
            self.alerts.append(str(found["data-alert"]))
        if "data-figure" in found:
            self._open.append(("figure", found["data-figure"]))
            self.figures[str(found["data-figure"])] = ""
        elif "data-state" in found and self._baseline is not None:
            self._open.append(("state", found["data-state"]))
            self.baselines[self._baseline][str(found["data-state"])] = ""
        elif tag in {"td", "b", "code", "span"}:
            self._open.append(("other", None))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._baseline = None
        if tag in {"td", "b", "code", "span"} and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if not self._open:
            return
        what, key = self._open[-1]
        if what == "figure" and key is not None:
            self.figures[key] += data
        elif what == "state" and key is not None and self._baseline is not None:
            self.baselines[self._baseline][key] += data


EXPECTED = {
    "acme": {
        "figures": {
            "scope": "acme",
            "compliant-percent": "25.0%",
            "devices": "4",
            "installed": "19",
            "failed": "3",
            "pending": "2",
            "pending-approvals": "3",
            "pending-approval-devices": "2",
            "applied-revision": "main@sha1:aaaaaaaaaaaa",
            "ready": "Ready",
        },
        "baselines": {
            "acme/linux-web": {
                "compliant": "1",
                "non-compliant": "1",
                "unknown": "0",
                "percent": "50.0",
            },
            "acme/windows-base": {
                "compliant": "0",
                "non-compliant": "1",
                "unknown": "1",
                "percent": "0.0",
            },
        },
        "alerts": ["InstallFailed", "RebootPending", "PolicyInvalid"],
        "absent": ["db-01", "other/linux", "DSA-1", "DSA-9"],
    },
    "acme/retail": {
        "figures": {
            "scope": "acme/retail",
            "compliant-percent": "50.0%",
            "devices": "2",
            "installed": "8",
            "failed": "1",
            "pending": "0",
            "pending-approvals": "1",
            "pending-approval-devices": "1",
            "applied-revision": "main@sha1:aaaaaaaaaaaa",
            "ready": "Ready",
        },
        "baselines": {
            "acme/linux-web": {
                "compliant": "1",
                "non-compliant": "1",
                "unknown": "0",
                "percent": "50.0",
            },
        },
        "alerts": ["InstallFailed", "PolicyInvalid"],
        "absent": ["win-01", "win-02", "windows-base", "KB7", "db-01", "logistics"],
    },
    "acme/logistics": {
        "figures": {
            "scope": "acme/logistics",
            "compliant-percent": "0.0%",
            "devices": "2",
            "installed": "11",
            "failed": "2",
            "pending": "2",
            "pending-approvals": "2",
            "pending-approval-devices": "1",
            "applied-revision": "main@sha1:aaaaaaaaaaaa",
            "ready": "Ready",
        },
        "baselines": {
            "acme/windows-base": {
                "compliant": "0",
                "non-compliant": "1",
                "unknown": "1",
                "percent": "0.0",
            },
        },
        "alerts": ["RebootPending", "PolicyInvalid"],
        "absent": ["web-01", "web-02", "linux-web", "USN-9", "db-01", "retail"],
    },
}
WIDGETS = ["compliance", "approvals", "patch-status", "trend", "alerts", "revision"]


def check_page(html: str, scope: str) -> None:
    """The page of `scope` shows the widgets with the numbers of the module docstring."""
    page = Figures(html)
    expected = EXPECTED[scope]
    assert WIDGETS == page.widgets
    assert expected["figures"] == {k: page.figures.get(k) for k in expected["figures"]}
    assert expected["baselines"] == page.baselines
    assert sorted(expected["alerts"]) == sorted(page.alerts)
    text = "".join(page.text)
    assert [] == [word for word in expected["absent"] if word in text]


# --- the app over ASGI, on each engine ------------------------------------------------------


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    build_dashboard_fleet(store)
    app = create_app(store, Settings(clock=lambda: NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://patchctl.test") as c:
            yield c


@pytest.mark.anyio
@pytest.mark.parametrize("scope", ["acme", "acme/retail", "acme/logistics"])
async def test_each_scope_sees_its_own_fleet(
    client: httpx.AsyncClient, store: Store, scope: str
) -> None:
    """A read token's page shows its scope's numbers and nothing of the other tenants."""
    answer = await client.get("/", headers={"Authorization": f"Bearer {read_token(store, scope)}"})
    assert 200 == answer.status_code
    check_page(answer.text, scope)


@pytest.mark.anyio
async def test_sign_in_sets_a_strict_http_only_cookie(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The form posts the token; the answer keeps it in an HttpOnly, SameSite=Strict cookie."""
    secret = read_token(store, "acme/retail")
    answer = await client.post("/login", data={"token": secret})
    assert (303, "/") == (answer.status_code, answer.headers["location"])
    cookie = answer.headers["set-cookie"].lower()
    assert {"httponly", "samesite=strict", "path=/"} <= {p.strip() for p in cookie.split(";")}
    page = await client.get("/")  # the client keeps the cookie
    assert 200 == page.status_code
    check_page(page.text, "acme/retail")
    assert secret not in page.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"token": "pcr_not-a-real-token"}, 401, "token: not valid"),
        ({"token": "  "}, 400, "token: enter a read token"),
        ({"other": "x"}, 400, "token: enter a read token"),
        ({"token": "x" * 300}, 401, "too long"),
    ],
    ids=["unknown", "blank", "missing", "too-long"],
)
async def test_a_bad_token_gets_the_form_again(
    client: httpx.AsyncClient, body: dict[str, str], status: int, message: str
) -> None:
    """A wrong token answers the form with a message naming the field, never the token."""
    answer = await client.post("/login", data=body)
    assert (status, True) == (answer.status_code, 'id="login"' in answer.text)
    assert message in answer.text
    assert "set-cookie" not in answer.headers
    assert "pcr_not-a-real-token" not in answer.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "named"),
    [
        (tokens.TokenKind.ENROLLMENT, "that is an enrollment token"),
        (tokens.TokenKind.ADMIN, "that is an admin token"),
    ],
    ids=["enrolment", "admin"],
)
async def test_a_device_token_is_not_a_read_token(
    client: httpx.AsyncClient, store: Store, kind: tokens.TokenKind, named: str
) -> None:
    """An enrolment or admin token signs nobody in (401 at /login, 403 as a bearer), and the
    form says which kind it was, in English ("an admin token", not "a admin token")."""
    secret = read_token(store, "acme/retail", kind)
    signed = await client.post("/login", data={"token": secret})
    bearer = await client.get("/", headers={"Authorization": f"Bearer {secret}"})
    assert (401, 403) == (signed.status_code, bearer.status_code)
    assert f"{named}; the dashboard needs a read token" in signed.text
    assert "data-widget" not in bearer.text


@pytest.mark.anyio
async def test_without_a_session_the_form_is_shown(client: httpx.AsyncClient) -> None:
    """No cookie and no bearer: the sign-in form, no data."""
    answer = await client.get("/")
    assert (401, True, False) == (
        answer.status_code,
        'name="token"' in answer.text,
        "data-widget" in answer.text,
    )


@pytest.mark.anyio
async def test_a_dead_session_cookie_is_cleared(client: httpx.AsyncClient) -> None:
    """A cookie whose token no longer authenticates gets the form and is deleted."""
    client.cookies.set("patchctl_read", "pcr_revoked-long-ago")
    answer = await client.get("/")
    assert 401 == answer.status_code
    assert "Your session has ended" in answer.text
    assert "max-age=0" in answer.headers["set-cookie"].lower()


@pytest.mark.anyio
async def test_logout_clears_the_cookie(client: httpx.AsyncClient, store: Store) -> None:
    """POST /logout forgets the session; the next page is the form."""
    await client.post("/login", data={"token": read_token(store, "acme")})
    answer = await client.post("/logout")
    assert (303, "/") == (answer.status_code, answer.headers["location"])
    assert 401 == (await client.get("/")).status_code


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token_scope", "tenant", "status"),
    [
        ("acme", "acme/retail", 200),
        ("acme/retail", "acme/logistics", 403),
        ("acme/retail", "acme", 403),
        ("acme", "Not A Tenant!", 400),
    ],
    ids=["partner-narrows", "sibling", "parent", "malformed"],
)
async def test_narrowing_stays_inside_the_scope(
    client: httpx.AsyncClient, store: Store, token_scope: str, tenant: str, status: int
) -> None:
    """`?tenant=` narrows a partner's page to a client, never widens a client's."""
    auth = {"Authorization": f"Bearer {read_token(store, token_scope)}"}
    answer = await client.get("/", params={"tenant": tenant}, headers=auth)
    assert status == answer.status_code
    if status == 200:
        check_page(answer.text, tenant)
    else:
        assert "tenant: " in answer.text


@pytest.mark.anyio
async def test_the_page_loads_nothing_and_refreshes(
    client: httpx.AsyncClient, store: Store
) -> None:
    """No script and no external resource; a CSP that forbids them; refresh every 30 s."""
    answer = await client.get("/", headers={"Authorization": f"Bearer {read_token(store, 'acme')}"})
    text = answer.text
    assert ([], False) == (
        [s for s in ("<script", " src=", "http://", "https://", "@import") if s in text],
        "script-src" in answer.headers["content-security-policy"],
    )
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert '<meta http-equiv="refresh" content="30">' in text
    assert "no-store" == answer.headers["cache-control"]


@pytest.mark.anyio
async def test_an_oversized_form_is_refused(client: httpx.AsyncClient) -> None:
    """The sign-in form adapter reads at most 4 KiB."""
    answer = await client.post("/login", data={"token": "x" * 5000})
    assert 413 == answer.status_code


@pytest.mark.anyio
async def test_json_login_works_for_tools(client: httpx.AsyncClient, store: Store) -> None:
    """`POST /login` with a JSON body signs in too (the form is converted to the same)."""
    answer = await client.post("/login", json={"token": read_token(store, "acme")})
    assert 303 == answer.status_code


@pytest.mark.anyio
async def test_pending_approvals_without_a_per_device_record(sqlite_store: Store) -> None:
    """With only the fleet's total, a scope that holds every device sees it; others see '?'."""
    build_dashboard_fleet(sqlite_store, by_device=False)
    app = create_app(sqlite_store, Settings(clock=lambda: NOW))
    transport = httpx.ASGITransport(app=app)

    async def pending(client: httpx.AsyncClient, scope: str) -> str | None:
        auth = {"Authorization": f"Bearer {read_token(sqlite_store, scope)}"}
        page = await client.get("/", headers=auth)
        return Figures(page.text).figures.get("pending-approvals")

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://patchctl.test") as client,
    ):
        before = await pending(client, "acme")
        with sqlite_store.write() as conn:  # the other partner's device leaves the fleet
            for table in (schema.jobs, schema.compliance, schema.alerts, schema.patch_states):
                conn.execute(table.delete().where(table.c.device_id == "d-db-01"))
            conn.execute(schema.devices.delete().where(schema.devices.c.id == "d-db-01"))
        after = (await pending(client, "acme"), await pending(client, "acme/retail"))
    assert ("?", ("4", "?")) == (before, after)


# --- a real browser against a real server ---------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: found, or installed with apt-get; skipped (failed in CI) otherwise."""
    binary, why = find_or_install_chromium()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"chromium is needed in CI: {why}")
        pytest.skip(f"no chromium: {why}")
    return binary


@pytest.fixture
def server(sqlite_store: Store) -> Iterator[str]:
    """`serve`'s app on a real loopback port (uvicorn in a thread, the clock fixed at NOW)."""
    build_dashboard_fleet(sqlite_store)
    config = uvicorn.Config(
        create_app(sqlite_store, Settings(clock=lambda: NOW)),
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    started = threading.Event()
    while thread.is_alive() and not started.wait(0.05):
        if running.started:
            started.set()
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{config.port}"
    running.should_exit = True
    thread.join(15)


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(chromium, tmp_path / "profile")
    yield opened
    opened.close()


def submit_token(browser: Browser, secret: str) -> None:
    """Type a token into the sign-in form and submit it, as a person would."""
    browser.forget_events()
    browser.evaluate(
        f"document.getElementById('token').value = {secret!r};"
        "document.getElementById('login').requestSubmit(); true"
    )
    browser.wait_for_load()


@pytest.mark.slow
def test_a_browser_signs_in_and_sees_the_widgets(
    browser: Browser, server: str, sqlite_store: Store, tmp_path: Path
) -> None:
    """Chromium: the form, a refused token, the partner's dashboard, a client, sign-out."""
    browser.open(f"{server}/")
    assert browser.evaluate("!!document.getElementById('login')")

    submit_token(browser, "pcr_wrong")
    assert "token: not valid" in browser.evaluate(
        "document.getElementById('login-error').textContent"
    )

    submit_token(browser, read_token(sqlite_store, "acme"))
    check_page(browser.dom(), "acme")
    assert "" == browser.evaluate("document.cookie")  # HttpOnly: no script can read the token
    shot = tmp_path / "dashboard.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])

    browser.open(f"{server}/?tenant=acme/retail")
    check_page(browser.dom(), "acme/retail")

    browser.forget_events()
    browser.evaluate("document.querySelector('form[action=\"/logout\"]').requestSubmit(); true")
    browser.wait_for_load()
    assert browser.evaluate("!!document.getElementById('login')")
