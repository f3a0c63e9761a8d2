"""What every handler needs: the store, settings, writer, authenticator and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import anyio.to_thread
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.server.errors import ApiError
from controller.store import tokens
from controller.vocabularies import token_phrase

if TYPE_CHECKING:
    from controller.runtime.service import Controller
    from controller.runtime.settings import Settings
    from controller.server.limits import EnrolmentLimits
    from controller.server.metrics import Metrics
    from controller.server.writer import Writer
    from controller.store import Store

# An admin token reads what a read token of its tenant reads (issue 16.4).
ALSO_ACCEPTED = {tokens.TokenKind.READ: frozenset({tokens.TokenKind.ADMIN})}
AUTH_CACHE_SECONDS = 30.0
AUTH_CACHE_SIZE = 200_000


@dataclass
class Authenticator:
    """Token -> principal, with a short positive cache so that steady polling costs no query.

    Only valid tokens are cached, for `AUTH_CACHE_SECONDS`; a re-enrolment in this process
    drops the device's old tokens at once, a revocation elsewhere takes effect within the TTL.
    """

    store: Store
    settings: Settings
    _cache: dict[str, tuple[tokens.Principal, float]] = field(default_factory=dict)

    async def principal(self, secret: str) -> tokens.Principal | None:
        digest = tokens.hash_secret(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        principal = await anyio.to_thread.run_sync(self._lookup, secret)
        if principal is not None:
            if len(self._cache) >= AUTH_CACHE_SIZE:
                self._cache.clear()
            self._cache[digest] = (principal, time.monotonic() + AUTH_CACHE_SECONDS)
        else:
            self._cache.pop(digest, None)
        return principal

    def forget(self, digests: tuple[str, ...] | list[str]) -> None:
        for digest in digests:
            self._cache.pop(digest, None)

    def _lookup(self, secret: str) -> tokens.Principal | None:
        with self.store.read() as conn:
            return tokens.authenticate(conn, secret, now=self.settings.clock())


@dataclass
class Services:
    store: Store
    settings: Settings
    writer: Writer
    metrics: Metrics
    authenticator: Authenticator
    controller: Controller | None = None  # the reconcile loop, when this process runs it
    enrolment_limits: EnrolmentLimits | None = None  # None: enrolment is not rate-limited

    async def principal(self, secret: str | None, *, needed: tokens.TokenKind) -> tokens.Principal:
        """Who a bearer secret speaks for; ApiError 401 or 403 unless it is a valid `needed`."""
        if not secret:
            raise ApiError(
                401, f"missing bearer token: send 'Authorization: Bearer <{needed} token>'"
            )
        principal = await self.authenticator.principal(secret)
        if principal is None:
            raise ApiError(401, "the bearer token is not valid (unknown, revoked or expired)")
        if principal.kind is not needed and principal.kind not in ALSO_ACCEPTED.get(
            needed, frozenset()
        ):
            raise ApiError(
                403,
                f"this call needs {token_phrase(needed)}, not {token_phrase(principal.kind)}",
            )
        return principal


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`: a device token for the agent calls, "
    "a read (or admin) token for the read API, an admin token for the admin API.",
)


async def _principal(
    secret: str | None, context: Services, *, needed: tokens.TokenKind
) -> tokens.Principal:
    return await context.principal(secret, needed=needed)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
Context = Annotated[Services, Depends(services)]


async def device_principal(credentials: Credentials, context: Context) -> tokens.Principal:
    """The device a device token speaks for."""
    secret = credentials.credentials if credentials else None
    return await _principal(secret, context, needed=tokens.TokenKind.DEVICE)


async def read_principal(credentials: Credentials, context: Context) -> tokens.Principal:
    """The tenant scope of a read token (or of an admin token, which reads its scope too)."""
    secret = credentials.credentials if credentials else None
    return await _principal(secret, context, needed=tokens.TokenKind.READ)


async def admin_principal(credentials: Credentials, context: Context) -> tokens.Principal:
    """The tenant scope of an admin token (the admin API's write operations)."""
    secret = credentials.credentials if credentials else None
    return await _principal(secret, context, needed=tokens.TokenKind.ADMIN)
