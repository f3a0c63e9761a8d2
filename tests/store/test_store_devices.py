"""Enrolment and device listings in the store, on SQLite and PostgreSQL: one device per name
and tenant, its id kept across re-enrolments, a clone refused, scopes respected."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from controller.store import Store, devices, schema
from controller.store.devices import Enrolled, Enrolment, IdentityConflict
from controller.testing import SettableClock

WEB = Enrolment(
    tenant="acme/retail",
    hostname="Web-01.example.com",
    os_family="linux",
    os_name="Ubuntu",
    os_version="24.04",
    role="server",
    agent_version="1.0",
    labels={"tier": "web"},
    machine_id="m-1",
)


def enrol(store: Store, enrolment: Enrolment, clock: SettableClock) -> Enrolled | IdentityConflict:
    with store.write() as conn:
        return devices.enrol(conn, enrolment, poll_interval=60, now=clock())


def test_a_new_device_is_named_by_its_lowercased_hostname(
    store: Store, clock: SettableClock
) -> None:
    """The first enrolment creates the device; its name is the hostname in lower case."""
    enrolled = enrol(store, WEB, clock)
    assert isinstance(enrolled, Enrolled)
    with store.read() as conn:
        device = devices.get_device(conn, enrolled.device_id, scope="acme")
    assert device is not None
    assert (True, "web-01.example.com", {"tier": "web"}, ()) == (
        enrolled.created,
        device["name"],
        device["labels"],
        enrolled.revoked_hashes,
    )


def test_re_enrolling_keeps_the_id_and_revokes_the_old_token(
    store: Store, clock: SettableClock
) -> None:
    """Same name and machine: same device, new facts, the previous token revoked."""
    first = enrol(store, WEB, clock)
    clock.advance(days=1)
    again = enrol(store, replace(WEB, hostname="WEB-01.example.com", os_version="24.10"), clock)
    assert isinstance(first, Enrolled)
    assert isinstance(again, Enrolled)
    with store.read() as conn:
        device = devices.get_device(conn, again.device_id, scope="acme/retail")
    assert device is not None
    assert (first.device_id, False, 1, "24.10") == (
        again.device_id,
        again.created,
        len(again.revoked_hashes),
        device["os_version"],
    )


def test_another_machine_with_the_name_is_a_conflict_unless_it_replaces(
    store: Store, clock: SettableClock
) -> None:
    """A clone is refused with one alert; `replace_machine` takes the device over."""
    first = enrol(store, WEB, clock)
    clone = enrol(store, replace(WEB, machine_id="m-2"), clock)
    replaced = enrol(store, replace(WEB, machine_id="m-2", replace_machine=True), clock)
    with store.read() as conn:
        kinds = conn.execute(sa.select(schema.alerts.c.kind)).scalars().all()
    assert isinstance(first, Enrolled)
    assert isinstance(clone, IdentityConflict)
    assert isinstance(replaced, Enrolled)
    assert (("m-1", "m-2"), first.device_id, ["IdentityConflict"]) == (
        (clone.enrolled_machine_id, clone.machine_id),
        replaced.device_id,
        kinds,
    )


def test_listings_and_counts_follow_the_tenant_scope(store: Store, clock: SettableClock) -> None:
    """A partner sees its clients' devices; a client only its own; `seen_since` counts online."""
    retail = enrol(store, WEB, clock)
    assert isinstance(retail, Enrolled)
    clock.advance(hours=1)
    enrol(store, replace(WEB, tenant="acme", hostname="hq-01", machine_id="m-3"), clock)
    enrol(store, replace(WEB, tenant="acmecorp", hostname="other", machine_id="m-4"), clock)
    with store.read() as conn:
        names = {
            scope: [d["name"] for d in devices.list_devices(conn, scope=scope)]
            for scope in ("acme", "acme/retail", None)
        }
        online = devices.count_devices(
            conn, scope="acme", seen_since=clock() - timedelta(minutes=2)
        )
        outside = devices.get_device(conn, retail.device_id, scope="acmecorp")
    assert {
        "acme": ["hq-01", "web-01.example.com"],
        "acme/retail": ["web-01.example.com"],
        None: ["hq-01", "web-01.example.com", "other"],
    } == names
    assert (1, None) == (online, outside)


@pytest.mark.parametrize("chunk", [500, 2], ids=["by-id", "whole-scope"])
def test_ids_are_looked_up_within_the_scope_however_many(
    store: Store, clock: SettableClock, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """`tenants_of` and `identities` answer the scope's devices among the ids (retired ones
    too; unknown ids and other tenants' devices left out), whether they look the ids up a
    chunk at a time or, when the ids are most of the scope, read the scope whole (`chunk` 2
    makes 9 ids "many")."""
    monkeypatch.setattr(devices, "_CHUNK", chunk)
    ids: dict[str, str] = {}
    for n, tenant in enumerate(["acme/retail"] * 10 + ["acme/logistics", "globex"]):
        enrolled = enrol(
            store, replace(WEB, tenant=tenant, hostname=f"web-{n:02d}", machine_id=f"m-{n}"), clock
        )
        assert isinstance(enrolled, Enrolled)
        ids[enrolled.device_id] = tenant
    retired = next(iter(ids))
    with store.write() as conn:
        conn.execute(
            schema.devices.update().where(schema.devices.c.id == retired).values(retired_at=clock())
        )
    unasked = list(ids)[8:10]  # two of the scope's devices: not answered
    asked = [i for i in ids if i not in unasked] + ["no-such-device"]
    with store.read() as conn:
        tenants = devices.tenants_of(conn, asked, scope="acme/retail")
        named = devices.identities(conn, asked, scope="acme")
    retail = {i: t for i, t in ids.items() if t == "acme/retail" and i not in unasked}
    assert sorted(retail.items()) == list(tenants.items())
    assert {i: t for i, t in ids.items() if t.startswith("acme") and i not in unasked} == {
        i: tenant for i, (_, tenant) in named.items()
    }
    assert retired in tenants
    assert 8 == len(tenants)
