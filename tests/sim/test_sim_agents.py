"""Simulated agents against the real app (ASGI transport): enrol, report, run jobs."""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from controller import sim
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.sim import fleet
from controller.store import devices, jobs, open_store, schema, tokens
from controller.store.job_states import JobKind

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TENANTS = ("acme/retail", "acme/logistics")


@asynccontextmanager
async def served(store, clock=lambda: START):
    app = create_app(store, Settings(clock=clock))
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


def enrolment_tokens(store) -> dict[str, str]:
    with store.write() as conn:
        return {
            tenant: tokens.create_token(
                conn, kind=tokens.TokenKind.ENROLLMENT, tenant=tenant, now=START
            ).secret
            for tenant in TENANTS
        }


async def run(store, devices_count: int, *, seed: int = 5, failure_rate: float = 0.0) -> sim.Stats:
    behaviour = sim.Behaviour(failure_rate=failure_rate, offline_rate=0.0, ramp_up=0.0)
    # one simulated time for the agents and the server, as in the demo: the server refuses a
    # scan dated beyond its own clock (issue 13.5)
    clock = sim.ScaledClock(speed=1e6, start=START)
    async with served(store, clock.now) as transport:
        return await sim.run_fleet(
            sim.FleetConfig(devices=devices_count, seed=seed, behaviour=behaviour, once=True),
            server="http://patchctl.test",
            enrollment_tokens=enrolment_tokens(store),
            clock=clock,
            transport=transport,
        )


def missing_by_name(store) -> dict[str, list[str]]:
    with store.read() as conn:
        rows = {
            r.id: r.name
            for r in conn.execute(sa.select(schema.devices.c.id, schema.devices.c.name))
        }
        states = devices.load_patch_states(conn)
    return {
        rows[device]: sorted(
            e["id"] for _, entries in docs.values() for e in entries if e["state"] == "missing"
        )
        for device, docs in states.items()
    }


async def test_fleet_enrols_and_reports(store) -> None:
    """Every simulated device enrols into its tenant and reports a scan."""
    stats = await run(store, 12)
    with store.read() as conn:
        rows = conn.execute(sa.select(schema.devices.c.tenant, schema.devices.c.last_scan_at)).all()
    assert (12, 12, {}) == (stats.enrolled, stats.reports, stats.errors)
    assert Counter({"acme/retail": 6, "acme/logistics": 6}) == Counter(r.tenant for r in rows)
    assert all(r.last_scan_at is not None for r in rows)


async def test_same_seed_reports_the_same_patches(store, tmp_path) -> None:
    """Two runs with one seed report the same missing patches per device."""
    await run(store, 6)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        await run(other, 6)
        assert missing_by_name(store) == missing_by_name(other)
    finally:
        other.close()


async def test_agents_run_install_and_scan_jobs(store) -> None:
    """Agents acknowledge, install (some patches fail), reboot when needed and report back."""
    await run(store, 6)
    with store.write() as conn:
        found = devices.load_patch_states(conn)
        targets = conn.execute(sa.select(schema.devices.c.id, schema.devices.c.tenant)).all()
        new = []
        for device in targets:
            missing = [
                e["id"]
                for _, entries in found[device.id].values()
                for e in entries
                if e["state"] == "missing"
            ]
            new.append(
                jobs.NewJob(
                    id=f"install-{device.id}",
                    device_id=device.id,
                    tenant=device.tenant,
                    kind=JobKind.INSTALL,
                    revision="main@sha1:0123",
                    patch_ids=tuple(missing[:3]),
                    payload={"reboot": "if-required"},
                    # the shared simulated clock runs at 1e6x: far enough for a loaded machine
                    deadline=START + timedelta(days=365),
                )
            )
            new.append(
                jobs.NewJob(
                    id=f"scan-{device.id}",
                    device_id=device.id,
                    tenant=device.tenant,
                    kind=JobKind.SCAN,
                    revision="main@sha1:0123",
                )
            )
        jobs.insert_jobs(conn, new, now=START)
    stats = await run(store, 6, failure_rate=0.3)
    with store.read() as conn:
        states = Counter(j["state"] for j in jobs.list_jobs(conn, scope="acme"))
        events = Counter(e["state"] for job in new for e in jobs.job_events(conn, job.id))
    assert {} == stats.errors
    assert 12 == states["succeeded"] + states["failed"]
    assert 12 == events["acked"]
    assert 6 == events["downloading"]
    assert stats.patches_installed + stats.patches_failed > 0


async def test_linux_agents_report_real_style_sources_and_kernels(store) -> None:
    """Simulated Linux hosts report dpkg-style sources and two kernels, running the newest: no reboot finding."""
    stats = await run(store, 12)
    i, d = schema.inventories.c, schema.devices.c
    with store.read() as conn:
        # Windows devices report an inventory too (their build and OS, no packages).
        linux = sa.select(i.device_id, i.kernel, i.packages).join(
            schema.devices, d.id == i.device_id
        )
        rows = conn.execute(linux.where(d.os_family == "linux")).all()
        reboots = [devices.device_inventory(conn, r.device_id)["reboot_required"] for r in rows]
    kernels_installed = [
        sum(p["name"].startswith(("kernel-core", "linux-image-")) for p in r.packages) for r in rows
    ]
    assert ({}, [2] * len(rows), [None] * len(rows)) == (stats.errors, kernels_installed, reboots)
    assert any(p.get("source") == "openssl" for r in rows for p in r.packages)


async def test_windows_agents_report_their_os_as_the_registry_says(store) -> None:
    """Simulated Windows hosts report a full build and registry-style OS values in the inventory."""
    await run(store, 12)
    i, d = schema.inventories.c, schema.devices.c
    with store.read() as conn:
        query = sa.select(d.os_name, i.os_build, i.windows).join(
            schema.devices, d.id == i.device_id
        )
        rows = conn.execute(query.where(d.os_family == "windows")).all()
    assert rows
    for row in rows:
        product, edition, display_version, build = fleet.WINDOWS_REGISTRY[row.os_name]
        assert (build, product, edition, display_version, "AMD64") == (
            row.os_build,
            row.windows["productName"],
            row.windows["editionId"],
            row.windows["displayVersion"],
            row.windows["architecture"],
        )


async def test_agents_paced_faster_than_the_service_report_in_its_time(store) -> None:
    """`patchctl simulate --speed` against a service that keeps real time: the agents run a
    million times faster and date what they report by the wall clock, so the service takes
    their scans (dated by simulated time, every scan was refused as from a clock far ahead)."""
    behaviour = sim.Behaviour(failure_rate=0.0, offline_rate=0.0, ramp_up=0.0)
    clock = sim.ScaledClock(speed=1e6, wall_stamps=True)
    async with served(store, lambda: datetime.now(tz=UTC)) as transport:
        stats = await sim.run_fleet(
            sim.FleetConfig(devices=4, seed=5, behaviour=behaviour, once=True),
            server="http://patchctl.test",
            enrollment_tokens=enrolment_tokens(store),
            clock=clock,
            transport=transport,
        )
    with store.read() as conn:
        scanned = conn.execute(sa.select(schema.devices.c.last_scan_at)).scalars().all()
    assert (4, 4, {}) == (stats.enrolled, stats.reports, stats.errors)
    assert all(moment is not None for moment in scanned)
