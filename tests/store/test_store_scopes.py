"""Tenant scopes and device references in queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from controller.store import Store, devices, schema
from controller.store.devices import Enrolled, Enrolment
from controller.store.scopes import in_scope, is_device
from controller.testing import SettableClock

HOST = Enrolment(
    tenant="acme",
    hostname="hq-01",
    os_family="linux",
    os_name="Debian",
    os_version="12",
    role="server",
    agent_version="1.0",
)
FLEET = (
    ("acme", "hq-01"),
    ("acme/retail", "RealHost.Example.org"),
    ("acme/retail2", "shop-02"),
    ("acmecorp", "other"),
)


@pytest.fixture
def fleet(store: Store, clock: SettableClock) -> dict[str, str]:
    """One device per tenant of `FLEET`; name -> device id."""
    ids: dict[str, str] = {}
    with store.write() as conn:
        for tenant, hostname in FLEET:
            enrolled = devices.enrol(
                conn, replace(HOST, tenant=tenant, hostname=hostname), poll_interval=60, now=clock()
            )
            assert isinstance(enrolled, Enrolled)
            ids[devices.device_name(hostname)] = enrolled.device_id
    return ids


def names(store: Store, condition: sa.ColumnElement[bool]) -> list[str]:
    d = schema.devices.c
    with store.read() as conn:
        return list(conn.execute(sa.select(d.name).where(condition).order_by(d.name)).scalars())


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(
            "acme", ["hq-01", "realhost.example.org", "shop-02"], id="partner-and-clients"
        ),
        pytest.param("acme/retail", ["realhost.example.org"], id="client-alone"),
        pytest.param("acmecorp", ["other"], id="prefix-is-not-a-parent"),
        pytest.param(None, ["hq-01", "other", "realhost.example.org", "shop-02"], id="everything"),
    ],
)
def test_a_scope_is_a_tenant_and_its_clients(
    store: Store, fleet: dict[str, str], scope: str | None, expected: list[str]
) -> None:
    """`acme` covers `acme/...` but not `acmecorp`; no scope covers every row."""
    assert expected == names(store, in_scope(schema.devices.c.tenant, scope))


@pytest.mark.parametrize(
    "reference",
    ["REALHOST.example.org", "realhost.example.org", "by-id"],
)
def test_a_device_is_found_by_id_or_by_name_in_any_case(
    store: Store, fleet: dict[str, str], reference: str
) -> None:
    """A host name matches case-insensitively; the id matches as it is."""
    wanted = fleet["realhost.example.org"] if reference == "by-id" else reference
    assert ["realhost.example.org"] == names(store, is_device(schema.devices.c.id, wanted))
