"""The dashboard's routes: `GET /`, `POST /login`, `/logout`, and the sign-in form adapter.

A browser signs in once with a read token: `POST /login` checks it with the read API's
Authenticator and keeps it in an HttpOnly, SameSite=Strict cookie, so every later page load is
authenticated exactly like a read API call (a revoked token stops working within the
Authenticator's cache TTL). `Authorization: Bearer <read token>` works too, for curl. The token
is never logged, never written into a page and never put in a URL.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from controller import errors
from controller.core import instants
from controller.kinds.common import TENANT_PATTERN, tenant_contains
from controller.kinds.notifications import AlertSeverity, EventType
from controller.server.context import Context
from controller.server.dashboard import drill, page, pages, view
from controller.server.errors import error_body
from controller.store import alerts as alert_store
from controller.store import tokens
from controller.vocabularies import token_phrase

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping
    from datetime import datetime
    from enum import StrEnum

    from controller.core.desired import DesiredState

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

router = APIRouter(include_in_schema=False)

COOKIE = "patchctl_read"
COOKIE_MAX_AGE = 12 * 3600  # a working day; the token's own expiry still applies
LOGIN_PATH = "/login"
MAX_FORM_BYTES = 4096
HEADERS = {
    "Content-Security-Policy": page.CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TenantQuery = Annotated[
    str | None,
    Query(max_length=127, description="Narrow to a tenant inside the token's scope."),
]


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _login_form(message: str | None, status: int) -> HTMLResponse:
    return _html(page.render_login(message=message), status)


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


async def _check(context: Context, secret: str) -> tokens.Principal | str:
    """The principal of a read token, or why the token is refused (a sentence for people)."""
    if len(secret) > tokens.MAX_SECRET_LENGTH:
        return "token: that is not a read token (too long)"
    principal = await context.authenticator.principal(secret)
    if principal is None:
        return "token: not valid (unknown, revoked or expired). Ask for a new read token."
    if principal.kind is not tokens.TokenKind.READ:
        shown = token_phrase(str(principal.kind))
        return f"token: that is {shown}; the dashboard needs a read token (pcr_…)."
    return principal


async def _signed_in(request: Request, context: Context) -> tokens.Principal | Response:
    """The read token's principal (a bearer header or the session cookie), or the sign-in form
    to answer instead."""
    bearer = _bearer(request)
    secret = bearer or request.cookies.get(COOKIE)
    if not secret:
        return _login_form(None, 401)
    found = await _check(context, secret)
    if isinstance(found, str) and bearer:
        return _login_form(found, 403 if "needs a read token" in found else 401)
    if isinstance(found, str):  # a session cookie that no longer works: forget it
        answer = _login_form("Your session has ended: " + found.removeprefix("token: "), 401)
        answer.delete_cookie(COOKIE, path="/")
        return answer
    return found


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, context: Context, tenant: TenantQuery = None) -> Response:
    """The dashboard of the token's scope (a partner's includes its clients)."""
    found = await _signed_in(request, context)
    if isinstance(found, Response):
        return found
    scope = found.tenant
    if tenant is not None:
        refused = _refuse_tenant(tenant, scope)
        if refused is not None:
            return refused
        scope = tenant
    now = context.settings.clock()

    def read() -> view.Dashboard:
        with context.store.read() as conn:
            return view.read_dashboard(conn, scope=scope, now=now)

    board = await anyio.to_thread.run_sync(read)
    return _html(page.render_dashboard(board))


# --- the drill-down pages ----------------------------------------------------------------------

ALERT_FILTERS = ("type", "severity", "state", "device", "tenant", "since", "until")
DEVICE_FILTERS = ("compliance", "online", "group", "tenant")


class FilterError(errors.NeedsHumanError):
    """A filter the page cannot apply: answered with the message and `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _query(request: Request, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    """The query's (name, value) pairs without empty values (an empty form field means no
    filter); an unknown name is refused, naming the known ones."""
    pairs = [(k, v.strip()) for k, v in request.query_params.multi_items() if v.strip()]
    unknown = sorted({k for k, _ in pairs} - set(allowed))
    if unknown:
        raise FilterError(f"{unknown[0]}: unknown filter; the filters are {', '.join(allowed)}")
    return pairs


def _one(pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise FilterError(f"{name}: give one value, not {len(values)}")
    return values[0] if values else None


def _each(pairs: list[tuple[str, str]], name: str, vocabulary: type[StrEnum]) -> tuple[Any, ...]:
    found = []
    for key, value in pairs:
        if key != name:
            continue
        try:
            found.append(vocabulary(value))
        except ValueError:
            known = ", ".join(member.value for member in vocabulary)
            raise FilterError(f"{name}: {value!r} is not one of {known}") from None
    return tuple(dict.fromkeys(found))


def _moment(pairs: list[tuple[str, str]], name: str, now: datetime) -> datetime | None:
    value = _one(pairs, name)
    if value is None:
        return None
    try:
        return instants.parse_instant(value, now=now)
    except ValueError as exc:
        raise FilterError(f"{name}: {exc}") from None


def _narrowed(pairs: list[tuple[str, str]], principal: tokens.Principal) -> str:
    tenant = _one(pairs, "tenant")
    if tenant is None:
        return principal.tenant
    refused = _refuse_tenant(tenant, principal.tenant)
    if refused is not None:
        raise FilterError(
            f"tenant: {tenant!r} is outside this token's scope {principal.tenant!r}"
            if refused.status_code == 403
            else f"tenant: {tenant!r} is not a tenant path",
            refused.status_code,
        )
    return tenant


def alert_filters(pairs: list[tuple[str, str]], *, now: datetime) -> alert_store.AlertFilter:
    """The alert browser's query as the store's filter; `FilterError` naming a bad field."""
    since, until = _moment(pairs, "since", now), _moment(pairs, "until", now)
    if not instants.ordered(since, until):
        raise FilterError("until: must be after since")
    device = _one(pairs, "device")
    if device is not None and len(device) > MAX_DEVICE_TEXT:
        raise FilterError(f"device: longer than {MAX_DEVICE_TEXT} characters")
    return alert_store.AlertFilter(
        kinds=_each(pairs, "type", EventType),
        severities=_each(pairs, "severity", AlertSeverity),
        states=_each(pairs, "state", alert_store.AlertState),
        device=device,
        since=since,
        until=until,
    )


MAX_DEVICE_TEXT = 253


def _desired(context: Context) -> DesiredState | None:
    """The policy revision the reconcile loop of this process last loaded (None without one)."""
    return context.controller.reconciler.last_valid if context.controller is not None else None


async def _page(
    request: Request,
    context: Context,
    render: Callable[[tokens.Principal, datetime], str | None],
    missing: str,
) -> Response:
    """Sign-in, then `render` in a worker thread: its page, 404 for None (`missing`), or the
    refusal of a bad filter."""
    found = await _signed_in(request, context)
    if isinstance(found, Response):
        return found
    now = context.settings.clock()
    try:
        body = await anyio.to_thread.run_sync(render, found, now)
    except FilterError as refused:
        return _html(page.render_refused(refused.message), refused.status)
    if body is None:
        return _html(page.render_refused(missing.format(scope=found.tenant)), 404)
    return _html(body)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, context: Context) -> Response:
    """The alert browser: the same filters as `patchctl alerts` and the read API."""

    def render(principal: tokens.Principal, now: datetime) -> str:
        pairs = _query(request, ALERT_FILTERS)
        scope = _narrowed(pairs, principal)
        filters = alert_filters(pairs, now=now)
        with context.store.read() as conn:
            found = drill.read_alerts(conn, scope=scope, filters=filters)
        return pages.render_alerts(found, query=pairs)

    return await _page(request, context, render, "")


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
async def alert_page(alert_id: str, request: Request, context: Context) -> Response:
    """One alert of the scope; 404 for any other."""

    def render(principal: tokens.Principal, _now: datetime) -> str | None:
        if not alert_id.isdigit() or len(alert_id) > MAX_ID_DIGITS:
            return None
        with context.store.read() as conn:
            found = drill.read_alert(conn, int(alert_id), scope=principal.tenant)
        return None if found is None else pages.render_alert(found, scope=principal.tenant)

    return await _page(request, context, render, "No such alert in the scope {scope!r}.")


MAX_ID_DIGITS = 18


@router.get("/devices", response_class=HTMLResponse)
async def devices_page(request: Request, context: Context) -> Response:
    """The devices of the scope, filtered by compliance, online and group."""

    def render(principal: tokens.Principal, now: datetime) -> str:
        pairs = _query(request, DEVICE_FILTERS)
        scope = _narrowed(pairs, principal)
        compliance = _each(pairs, "compliance", drill.Compliance)
        online = _each(pairs, "online", drill.Online)
        if len(compliance) > 1 or len(online) > 1:
            raise FilterError("compliance, online: give one value each")
        desired = _desired(context)
        group = _one(pairs, "group")
        if group is not None and group not in drill.visible_groups(desired, scope):
            raise FilterError(
                f"group: no group {group!r} in this scope"
                if desired is not None
                else "group: no policy revision is loaded in this process (a `patchctl serve` "
                "that runs the reconcile loop knows the groups)"
            )
        filters = drill.DeviceFilter(
            compliance=compliance[0] if compliance else None,
            online=online[0] if online else None,
            group=group,
        )
        with context.store.read() as conn:
            found = drill.read_devices(conn, scope=scope, filters=filters, desired=desired, now=now)
        return pages.render_devices(found)

    return await _page(request, context, render, "")


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(device_id: str, request: Request, context: Context) -> Response:
    """One device of the scope: patches with explain's reasons, jobs, alerts; 404 otherwise."""

    def render(principal: tokens.Principal, now: datetime) -> str | None:
        with context.store.read() as conn:
            found = drill.read_device(
                conn, device_id, scope=principal.tenant, desired=_desired(context), now=now
            )
        return None if found is None else pages.render_device(found, scope=principal.tenant)

    return await _page(request, context, render, "No such device in the scope {scope!r}.")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(job_id: str, request: Request, context: Context) -> Response:
    """One job of the scope: per-patch results, output and events; 404 otherwise."""

    def render(principal: tokens.Principal, _now: datetime) -> str | None:
        with context.store.read() as conn:
            found = drill.read_job(conn, job_id, scope=principal.tenant)
        return None if found is None else pages.render_job(found, scope=principal.tenant)

    return await _page(request, context, render, "No such job in the scope {scope!r}.")


def _refuse_tenant(tenant: str, scope: str) -> HTMLResponse | None:
    if not re.fullmatch(TENANT_PATTERN, tenant):
        return _html(page.render_refused(f"tenant: {tenant!r} is not a tenant path"), 400)
    if not tenant_contains(scope, tenant):
        message = f"tenant: {tenant!r} is outside this token's scope {scope!r}"
        return _html(page.render_refused(message), 403)
    return None


@router.post(LOGIN_PATH)
async def login(request: Request, context: Context) -> Response:
    """Check a read token and keep it in an HttpOnly cookie; the form again with 401 if wrong."""
    secret = _token_field(await request.body())
    if secret is None:
        return _login_form("token: enter a read token.", 400)
    found = await _check(context, secret)
    if isinstance(found, str):
        return _login_form(found, 401)
    answer = RedirectResponse("/", status_code=303, headers=HEADERS)
    answer.set_cookie(
        COOKIE,
        secret,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


def _token_field(body: bytes) -> str | None:
    try:
        found = json.loads(body or b"{}")
    except ValueError:
        return None
    token = found.get("token") if isinstance(found, dict) else None
    return token.strip() or None if isinstance(token, str) else None


@router.api_route("/logout", methods=["GET", "POST"])
async def logout() -> Response:
    """Forget the session cookie and show the sign-in form."""
    answer = RedirectResponse("/", status_code=303, headers=HEADERS)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer


class LoginForm:
    """ASGI middleware: the sign-in form's body, as JSON, for `POST /login`.

    A browser without script can only post `application/x-www-form-urlencoded`, while the
    service's request limits let only JSON bodies reach a handler. This adapter sits in front
    of those limits, reads a form posted to /login (at most `MAX_FORM_BYTES`), and hands it on
    as the equivalent JSON object; every other request passes untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_form_login(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_bounded(receive, MAX_FORM_BYTES)
        if body is None:
            await _refuse_too_large(send)
            return
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        converted = json.dumps({name: values[0] for name, values in fields.items()}).encode()
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in {b"content-type", b"content-length", b"transfer-encoding"}
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(converted)).encode()),
        ]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": converted, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def _is_form_login(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != LOGIN_PATH:
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(
                value.split(b";", 1)[0].strip().lower() == b"application/x-www-form-urlencoded"
            )
    return False


async def _read_bounded(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse_too_large(send: Send) -> None:
    body = json.dumps(
        error_body(413, f"the sign-in form is larger than {MAX_FORM_BYTES} bytes")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
