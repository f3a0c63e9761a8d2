"""Agent report ingest over real HTTP: reports per second into `patchctl serve`.

Starts `patchctl serve` (uvicorn, one process) on loopback in a subprocess, enrols devices,
then several concurrent keep-alive connections post reports as fast as the server answers.
Every report carries facts and a fresh scan (30 missing + 10 installed patches), the
expensive path; every answer must be 200. Runs against SQLite, and against PostgreSQL too when
PATCHCTL_TEST_POSTGRES_URL is set (in a schema of its own, dropped afterwards).

The load generator writes pre-built HTTP/1.1 requests on raw sockets so that it spends little
of the machine's CPU: the figure is the server's, not the client's.

    .venv/bin/python bench/ingest.py [--reports 20000] [--clients 16] [--devices 500]
    .venv/bin/python bench/ingest.py --inventory 700 --catalogue 2000   # server-side applicability

With `--inventory N` every report also carries the device's package inventory: N Ubuntu 24.04
packages on the Linux half of the fleet, the OS build on the Windows half. With `--catalogue N`
the store first holds N synthetic patch records (half Ubuntu 24.04 package fixes, half Windows
KBs, 24 of them cumulative on the devices' build line), so every inventory is evaluated against
the catalogue in the report's transaction (controller/store/findings.py).

Writes bench/results/ingest.json (or --out) and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest.json"
PATCHCTL = [sys.executable, "-m", "controller.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def enrolment_token(db_url: str) -> str:
    from controller.store import open_store, tokens  # noqa: PLC0415

    store = open_store(db_url)
    try:
        with store.write() as conn:
            issued = tokens.create_token(
                conn, kind=tokens.TokenKind.ENROLLMENT, tenant="bench", now=datetime.now(tz=UTC)
            )
        return issued.secret
    finally:
        store.close()


def seed_catalogue(db_url: str, size: int) -> None:
    """`size` synthetic records: Ubuntu 24.04 package fixes (every 20th newer than the installed
    version) and Windows KBs (24 cumulative ones on the bench devices' 10.0.20348 line)."""
    from controller.core.patches import FixedPackage, PatchRecord, ProductBuild  # noqa: PLC0415
    from controller.kinds.common import Classification, OsFamily, Severity  # noqa: PLC0415
    from controller.store import catalogue, open_store  # noqa: PLC0415

    records = []
    for n in range(size // 2):
        fixed = "1.9-1ubuntu1" if n % 20 == 0 else "1.0-1ubuntu1"
        records.append(
            PatchRecord(
                id=f"USN-{9000 + n}-1",
                os=OsFamily.LINUX,
                classification=Classification.SECURITY,
                severity=Severity.IMPORTANT,
                packages=(FixedPackage(f"pkg-{n % 1000:04d}", fixed, "ubuntu:24.04", "amd64"),),
            )
        )
    for n in range(size - size // 2):
        on_line = n < 24
        build = f"10.0.20348.{2000 + 100 * n}" if on_line else f"10.0.17763.{5000 + n}"
        records.append(
            PatchRecord(
                id=f"KB{6000000 + n}",
                os=OsFamily.WINDOWS,
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL,
                supersedes=(f"KB{6000000 + n - 1}",) if on_line and n else (),
                builds=(ProductBuild("Windows Server 2022", build),),
            )
        )
    store = open_store(db_url)
    try:
        catalogue.upsert_records(store, records)
    finally:
        store.close()


def start_server(db_url: str, port: int, state_dir: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            *PATCHCTL,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            db_url,
            "--state-dir",
            str(state_dir),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        if server.poll() is not None:
            raise RuntimeError(
                f"serve exited: {server.stderr.read().decode() if server.stderr else ''}"
            )
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("serve did not come up within 30 s")


def enrol(port: int, token: str, devices: int) -> list[tuple[str, str]]:
    found = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for index in range(devices):
            windows = index % 2 == 0
            answer = client.post(
                "/api/v1/enroll",
                json={
                    "enrollmentToken": token,
                    "hostname": f"bench-{index:05d}",
                    "os": {
                        "family": "windows",
                        "name": "Windows Server 2022",
                        "version": "10.0.20348",
                    }
                    if windows
                    else {"family": "linux", "name": "Ubuntu", "version": "24.04"},
                    "agentVersion": "bench/1",
                    "role": "server",
                    "labels": {"env": "prod"},
                },
            )
            answer.raise_for_status()
            found.append((answer.json()["deviceId"], answer.json()["deviceToken"]))
    return found


def inventory(index: int, packages: int) -> dict[str, object]:
    """The inventory of bench device `index` (even: Windows, odd: Ubuntu 24.04)."""
    if index % 2 == 0:
        return {"osBuild": f"10.0.20348.{2050 + index % 2000}"}
    return {
        "kernel": "6.8.0-45-generic",
        "packages": [
            {"name": f"pkg-{p:04d}", "version": "1.2-1ubuntu1", "arch": "amd64"}
            for p in range(packages)
        ],
    }


def build_requests(
    devices: list[tuple[str, str]], count: int, port: int, *, packages: int = 0
) -> list[bytes]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    requests = []
    for n in range(count):
        device_id, token = devices[n % len(devices)]
        body: dict[str, object] = {
            "facts": {
                "hostname": f"bench-{n % len(devices):05d}",
                "uptime": 1000 + n,
                "agentVersion": "bench/1",
            },
            "scan": {
                "scannedAt": (start + timedelta(seconds=n)).isoformat(),
                "rebootRequired": n % 7 == 0,
                "missing": [
                    {
                        "id": f"KB{5040000 + (n + i) % 200}",
                        "title": "Cumulative update",
                        "classification": "security",
                        "severity": "critical",
                        "sizeBytes": 1 << 20,
                    }
                    for i in range(30)
                ],
                "installed": [
                    {"id": f"KB{4000000 + i}", "installedAt": "2026-10-01T00:00:00+00:00"}
                    for i in range(10)
                ],
            },
        }
        if packages:
            body["inventory"] = inventory(n % len(devices), packages)
        payload = json.dumps(body).encode()
        head = (
            f"POST /api/v1/devices/{device_id}/report HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        requests.append(head + payload)
    return requests


async def load(port: int, requests: list[bytes], clients: int) -> tuple[float, list[float], int]:
    """Send the requests over `clients` keep-alive connections; count answers other than a
    200 with a stored scan as failures."""
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)

    async def client() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
                sent = time.perf_counter()
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                failures += status != 200 or b'"scan": "stored"' not in body
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies, failures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report the server's cost per
    report independently of what else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(engine: str, db_url: str, args: argparse.Namespace) -> dict[str, object]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        token = enrolment_token(db_url)
        if args.catalogue:
            seed_catalogue(db_url, args.catalogue)
        server = start_server(db_url, port, Path(tmp))
        try:
            devices = enrol(port, token, args.devices)
            warmup = build_requests(devices, args.warmup, port, packages=args.inventory)
            asyncio.run(load(port, warmup, args.clients))
            requests = build_requests(devices, args.reports, port, packages=args.inventory)
            # Fresh scans only: shift the measured reports after the warm-up ones.
            requests = [r.replace(b"2026-11-01T", b"2026-11-02T", 1) for r in requests]
            cpu_before = cpu_seconds(server.pid)
            seconds, latencies, failures = asyncio.run(load(port, requests, args.clients))
            server_cpu = cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies.sort()
    return {
        "engine": engine,
        "reports": len(latencies),
        "clients": args.clients,
        "devices": args.devices,
        "patchesPerReport": 40,
        "inventoryPackages": args.inventory,
        "catalogueRecords": args.catalogue,
        "seconds": round(seconds, 3),
        "reportsPerSecond": round(len(latencies) / seconds, 1),
        "latencyMs": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
        "serverCpuMsPerReport": round(server_cpu * 1000 / len(latencies), 3),
        "notStored": failures,
    }


def postgres_url() -> tuple[str, str] | None:
    url = os.environ.get("PATCHCTL_TEST_POSTGRES_URL")
    if not url:
        return None
    import psycopg  # noqa: PLC0415

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    import psycopg  # noqa: PLC0415

    plain = os.environ["PATCHCTL_TEST_POSTGRES_URL"].replace(
        "postgresql+psycopg://", "postgresql://"
    )
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument(
        "--inventory", type=int, default=0, help="packages per Linux inventory (0: none)"
    )
    parser.add_argument("--catalogue", type=int, default=0, help="synthetic catalogue records")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run("sqlite", f"sqlite:///{tmp}/patchctl.db", args))
    pg = postgres_url()
    if pg is not None:
        try:
            results.append(run("postgresql", pg[0], args))
        finally:
            drop_schema(pg[1])
    document = {
        "benchmark": "agent report ingest over real HTTP (patchctl serve, one process)",
        "target": ">= 1000 reports/s with SQLite on 2 cores",
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
