"""The real app over httpx's ASGI transport, its lifespan (and so its writer) running, on each
engine; tokens and devices are created through the store or the public API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from controller.store import Store
    from controller.testing import SettableClock

MAX_BODY = 64 * 1024


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    clock: SettableClock

    def token(self, tenant: str, kind: tokens.TokenKind = tokens.TokenKind.READ) -> str:
        with self.store.write() as conn:
            return tokens.create_token(conn, kind=kind, tenant=tenant, now=self.clock()).secret

    async def enroll(
        self, hostname: str = "web-01", tenant: str = "acme/retail", **extra: Any
    ) -> tuple[str, dict[str, str]]:
        """Enrol through the API; the device id and its Authorization header."""
        body = self.enroll_body(self.token(tenant, tokens.TokenKind.ENROLLMENT), hostname) | extra
        answer = await self.client.post("/api/v1/enroll", json=body)
        assert 200 == answer.status_code, answer.text
        found = answer.json()
        return found["deviceId"], {"Authorization": f"Bearer {found['deviceToken']}"}

    @staticmethod
    def enroll_body(token: str, hostname: str) -> dict[str, Any]:
        return {
            "enrollmentToken": token,
            "hostname": hostname,
            "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
            "agentVersion": "1.2.0",
            "role": "server",
            "labels": {"role": "web"},
        }


@pytest.fixture
async def api(store: Store, clock: SettableClock) -> AsyncIterator[Api]:
    app = create_app(store, Settings(clock=clock, max_body_bytes=MAX_BODY))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://patchctl.test"
        ) as client:
            yield Api(client, store, clock)
