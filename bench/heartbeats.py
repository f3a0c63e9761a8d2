"""Heartbeats and the reconcile loop: how busy N devices that report nothing new keep it.

In one process: the real app (over httpx's ASGI transport) with the service's real reconcile
loop (the example policy repository, the default 2 s report debounce) on SQLite. N devices
enrol and send one full report each (facts, a scan, an inventory); once the loop is idle, they
report at `--rate` reports per second for `--seconds`, each report a heartbeat with the same
facts, half of them also repeating the device's scan (same sets, a newer `scannedAt`). Counted:
the passes that started meanwhile, the loop's busy time (the sum of their durations) and the
report latencies.

Two runs of the same load: `every-report` makes every written batch trigger the loop (the
behaviour before issue 14.2), `changes-only` is the service as it is (only reports that change
a planner input do).

    .venv/bin/python bench/heartbeats.py [--devices 2000] [--rate 20] [--seconds 20]

Writes bench/results/heartbeats.json (or --out) and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "heartbeats.json"

FACTS = {
    "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
    "role": "server",
    "labels": {"tier": "web"},
    "agentVersion": "1.0",
}
SCANNED = datetime(2026, 11, 1, tzinfo=UTC)


def scan(at: datetime) -> dict[str, Any]:
    return {
        "scannedAt": at.isoformat(),
        "rebootRequired": False,
        "missing": [{"id": f"USN-{7000 + i}-1"} for i in range(5)],
        "installed": [{"id": f"USN-{6000 + i}-1"} for i in range(20)],
    }


def enrol_all(store: Any, count: int) -> list[tuple[str, dict[str, str]]]:
    from controller.store import devices, tokens  # noqa: PLC0415

    now = datetime.now(tz=UTC)
    found = []
    with store.write() as conn:
        tokens.ensure_tenant(conn, "acme/retail", now=now)
        for index in range(count):
            enrolled = devices.enrol(
                conn,
                devices.Enrolment(
                    tenant="acme/retail",
                    hostname=f"web-{index:06d}",
                    os_family="linux",
                    os_name="Ubuntu",
                    os_version="24.04",
                    role="server",
                    agent_version="1.0",
                    labels={"tier": "web"},
                    machine_id=None,
                    replace_machine=False,
                ),
                poll_interval=3600,
                now=now,
            )
            assert isinstance(enrolled, devices.Enrolled)  # noqa: S101 - a new store
            found.append((enrolled.device_id, {"Authorization": f"Bearer {enrolled.token.secret}"}))
    return found


async def post_all(
    client: httpx.AsyncClient, requests: list[tuple[str, dict[str, str], dict[str, Any]]]
) -> None:
    for start in range(0, len(requests), 200):
        answers = await asyncio.gather(
            *(
                client.post(f"/api/v1/devices/{d}/report", headers=auth, json=body)
                for d, auth, body in requests[start : start + 200]
            )
        )
        assert all(a.status_code == 200 for a in answers)  # noqa: S101 - a bench, not a test


async def paced(
    client: httpx.AsyncClient,
    fleet: list[tuple[str, dict[str, str]]],
    *,
    rate: float,
    seconds: float,
) -> list[float]:
    """Reports at `rate` per second for `seconds`; their latencies in seconds."""
    latencies: list[float] = []

    async def one(index: int) -> None:
        device, auth = fleet[index % len(fleet)]
        body: dict[str, Any] = {"facts": FACTS}
        if index % 2:
            body["scan"] = scan(SCANNED + timedelta(minutes=1 + index))
        started = time.perf_counter()
        answer = await client.post(f"/api/v1/devices/{device}/report", headers=auth, json=body)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200  # noqa: S101 - a bench, not a test

    tasks = []
    begin = time.perf_counter()
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(begin + index / rate - time.perf_counter(), 0))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return latencies


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from controller.runtime.reconcile import PolicySource, Reconciler  # noqa: PLC0415
    from controller.runtime.service import Controller, ServiceOptions  # noqa: PLC0415
    from controller.runtime.settings import Settings  # noqa: PLC0415
    from controller.server import create_app, writer  # noqa: PLC0415
    from controller.store import open_store  # noqa: PLC0415
    from controller.testing import PolicyRepo  # noqa: PLC0415

    original = writer._replans  # noqa: SLF001 - the bench's switch between the two behaviours
    if mode == "every-report":
        writer._replans = lambda *_a, **_k: True  # noqa: SLF001
    with tempfile.TemporaryDirectory() as tmp:
        repo = PolicyRepo(Path(tmp) / "example")
        repo.copy_example()
        repo.commit("example repository")
        store = open_store(f"sqlite:///{tmp}/state.db")
        reconciler = Reconciler(
            store=store,
            source=PolicySource(str(repo.path), "main", Path(tmp) / "state"),
            clock=lambda: datetime.now(tz=UTC),
        )
        busy: list[float] = []
        reconcile = reconciler.reconcile

        def timed() -> Any:
            started = time.perf_counter()
            try:
                return reconcile()
            finally:
                busy.append(time.perf_counter() - started)

        reconciler.reconcile = timed  # type: ignore[method-assign]
        options = ServiceOptions(
            interval=timedelta(hours=1), jitter=0.0, watch_branch=False, notify=False, feeds=False
        )
        controller = Controller(reconciler, options)
        app = create_app(store, Settings(poll_interval=timedelta(hours=1)), controller)
        fleet = enrol_all(store, args.devices)

        async def main() -> list[float]:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app), base_url="http://bench"
                ) as client,
            ):
                await post_all(
                    client,
                    [(d, auth, {"facts": FACTS, "scan": scan(SCANNED)}) for d, auth in fleet],
                )
                await asyncio.to_thread(controller.loop.wait_idle, 600)
                busy.clear()
                latencies = await paced(client, fleet, rate=args.rate, seconds=args.seconds)
                # the deferred pass of the last reports (the debounce) belongs to this load
                await asyncio.to_thread(controller.loop.wait_idle, 600)
                return latencies

        try:
            wall = time.perf_counter()
            latencies = asyncio.run(main())
            wall = time.perf_counter() - wall
        finally:
            writer._replans = original  # noqa: SLF001
            store.close()
    latencies.sort()
    return {
        "mode": mode,
        "devices": args.devices,
        "reportsPerSecond": args.rate,
        "seconds": args.seconds,
        "reports": len(latencies),
        "passes": len(busy),
        "loopBusySeconds": round(sum(busy), 3),
        "loopBusyFraction": round(sum(busy) / args.seconds, 3),
        "passSecondsMean": round(statistics.mean(busy), 3) if busy else None,
        "latencyMs": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
        "wallSeconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="reports per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = [run(mode, args) for mode in ("every-report", "changes-only")]
    document = {
        "benchmark": "reconcile loop busy time under heartbeats and repeated scans (in process)",
        "target": "a report that changes nothing: no planning work (issue 14)",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measuredAt": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
