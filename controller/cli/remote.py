"""Read commands against a running service: `--server URL` with a read token from
`PATCHCTL_TOKEN`, so operators never need the controller's database file or credentials.

The token is read from the environment only (never an option: command lines are visible to
every user of the machine in the process list). Answers are the read API's, already scoped to
the token's tenant (docs/api.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from controller.cli.common import fail
from controller.vocabularies import http_url_problem, token_phrase

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_ENV = "PATCHCTL_TOKEN"  # noqa: S105 - the variable's name, not a secret
TIMEOUT_SECONDS = 30.0


def server_options(func: F) -> F:
    """--server URL (PATCHCTL_SERVER) and --ca-file FILE (PATCHCTL_CA_FILE), for a command
    that reads (a read token)."""
    return _server_options(func, kind="read")


def admin_server_options(func: F) -> F:
    """The same for a command that changes something, or reads the admin API (an admin
    token)."""
    return _server_options(func, kind="admin")


def check_server(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A `--server` option's value: an http:// or https:// URL with a host, else a usage error
    naming the option (exit 2) before the command reads or writes anything; None when not
    given. The callback of every --server option (the read and admin commands, `simulate`)."""
    if value is not None and http_url_problem(value) is not None:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value


def _server_options(func: F, *, kind: str) -> F:
    func = click.option(
        "--ca-file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        envvar="PATCHCTL_CA_FILE",
        show_envvar=True,
        metavar="FILE",
        help="CA certificate(s) to trust for an https --server (default: the system store).",
    )(func)
    return click.option(
        "--server",
        default=None,
        callback=check_server,
        envvar="PATCHCTL_SERVER",
        show_envvar=True,
        metavar="URL",
        help=f"Ask a running service instead of the local database, with {token_phrase(kind)} "
        f"in {TOKEN_ENV}; answers are scoped to the token's tenant.",
    )(func)


def get(
    server: str,
    path: str,
    *,
    ca_file: Path | None,
    params: dict[str, Any] | None = None,
    timeout: float = TIMEOUT_SECONDS,
    kind: str = "read",
) -> Any:
    """GET `path` of the read API (of the admin API: `kind` "admin") as JSON; exits 2 with the
    service's own message on an error answer, and a sentence on an unreachable server or a
    missing token."""
    query = {k: v for k, v in (params or {}).items() if v is not None}
    answer = _call("GET", server, path, ca_file=ca_file, timeout=timeout, kind=kind, params=query)
    if answer.status_code != 200:
        _refused(server, answer, code=2)
    return answer.json()


def _call(
    method: str,
    server: str,
    path: str,
    *,
    ca_file: Path | None,
    timeout: float,
    kind: str,
    **request: Any,
) -> Any:
    """One request with the token of `PATCHCTL_TOKEN` (of `kind`, for the message when it is
    missing); exits 2 on a missing token or an unreachable server (`check_server` has checked
    the URL)."""
    import httpx  # noqa: PLC0415 - keep --help fast

    from controller.redaction import redact_text  # noqa: PLC0415

    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        fail(
            f"--server needs {token_phrase(kind)} in {TOKEN_ENV} "
            f"(patchctl token create --kind {kind})"
        )
    verify: Any = True
    if ca_file is not None:
        import ssl  # noqa: PLC0415

        verify = ssl.create_default_context(cafile=str(ca_file))
    try:
        return httpx.request(
            method,
            server.rstrip("/") + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
            **request,
        )
    except httpx.HTTPError as exc:
        fail(redact_text(f"cannot reach {server}: {exc}"))
        raise  # unreachable: fail() exits


def _refused(server: str, answer: Any, *, code: int) -> None:
    from controller.redaction import redact_text  # noqa: PLC0415

    fail(redact_text(f"{server} answered {answer.status_code}: {_message(answer)}"), code)


def _message(answer: Any) -> str:
    try:
        body = answer.json()
    except ValueError:
        return str(answer.text)[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body)
    return str(body)[:200]


def post(
    server: str,
    path: str,
    *,
    ca_file: Path | None,
    body: dict[str, Any],
    timeout: float = TIMEOUT_SECONDS,
) -> Any:
    """POST `body` to `path` of the admin API with the admin token of `PATCHCTL_TOKEN`; the
    answer as JSON. A 404 (no such object in the token's scope) or 409 (its state does not
    allow it) exits 1 with the service's message; any other error answer, an unreachable
    server or a missing token exits 2."""
    answer = _call("POST", server, path, ca_file=ca_file, timeout=timeout, kind="admin", json=body)
    if answer.status_code != 200:
        _refused(server, answer, code=1 if answer.status_code in (404, 409) else 2)
    return answer.json()
