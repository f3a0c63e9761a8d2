"""Server-side applicability through the real parts: the HTTP app over httpx's ASGI transport
(its lifespan, and so its writer, running), the store on SQLite and PostgreSQL, real feed files
in tmp_path. Only the clock is faked. The catalogue is built from small records written here
(`applicabilityhelpers.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from applicabilityhelpers import Api

from controller.runtime.settings import Settings
from controller.server import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from controller.store import Store
    from controller.testing import SettableClock


@pytest.fixture
async def api(store: Store, clock: SettableClock) -> AsyncIterator[Api]:
    app = create_app(store, Settings(clock=clock))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://patchctl.test"
        ) as client:
            yield Api(client, store, clock)
