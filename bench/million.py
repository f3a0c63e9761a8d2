"""A million devices on PostgreSQL (issue 14 item 7, DESIGN §9): wall time and peak memory of
the service's full reconcile pass, with the read (observe), plan and apply (writes) timed apart.

The fleet is written straight into a fresh database (PostgreSQL: `COPY`, streamed in chunks;
SQLite: multi-row inserts): `--devices` Linux devices over `--tenants` clients of one partner,
ten rings by label, each with an agent scan of the last 20 hours missing a handful of patches (one of
`--variants` seeded patch sets of 4-16 of a 400-patch catalogue). The policy repository is
bench/incremental.py's (a baseline for every Linux device, a weekly window open at the bench's
instant) plus an approval of three patches for ring r0, so the pass writes a compliance row
per device and issues install jobs to about a tenth of the fleet.

Each measured run is its own process (`ru_maxrss` is the peak of that process alone):
(1) the first pass of a fresh reconciler (reads everything, plans everything, writes every
compliance row and the jobs), (2) the periodic resync (`--passes 2`, the default): the same
reconciler's next full pass, as the service runs it every `resync`. It reads everything again
beside what it kept and compares the two (drift), plans everything again and compares every
stored compliance row, writing nothing new; the first pass's plan is let go of as the
service's loop lets go of it when the next pass starts. The resync is the peak of a
long-running service. `--tracemalloc` also
traces the Python heap (slower; its peak excludes the interpreter, C buffers and free lists).

    .venv/bin/python bench/million.py [--devices 1000000] [--url postgresql://postgres@127.0.0.1:5432/postgres]
    .venv/bin/python bench/million.py --devices 100000 --url sqlite --json FILE

`--url` names the server (a database `patchctl_bench_<pid>` is created there and dropped
after), or `sqlite` for a file in a temporary directory. `--template NAME` (PostgreSQL) keeps
the built fleet as database NAME and clones it on the next runs of the same fleet instead of
building it again (`buildSeconds` is then the copy's); `DROP DATABASE NAME` when done.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # Sunday 02:30 Berlin: the weekly window is open
PARTNER = "msp"
CATALOGUE = 400  # patches; the scans draw from them
RINGS = 10

POLICY = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {{name: msp}}
spec: {{clients: [{clients}]}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {{name: all-linux, tenant: msp}}
spec: {{selector: {{os: linux}}}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {{name: ring0, tenant: msp}}
spec: {{selector: {{labels: {{ring: r0}}}}}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {{name: lin, tenant: msp}}
spec: {{os: linux, targets: {{groups: [all-linux]}}, rules: [{{severities: [critical]}}]}}
---
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {{name: weekly, tenant: msp}}
spec: {{targets: {{groups: [all-linux]}}, recurrence: {{cron: '0 2 * * SUN'}},
  timezone: Europe/Berlin, duration: 4h, cutoff: 1h}}
---
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: hotfix, tenant: msp}}
spec: {{patches: [LNX-0000, LNX-0001, LNX-0002], targets: {{groups: [ring0]}}, reason: bench}}
"""

DEVICE_COLUMNS = (
    "id",
    "tenant",
    "name",
    "hostname",
    "os_family",
    "os_name",
    "os_version",
    "role",
    "labels",
    "facts",
    "agent_version",
    "poll_interval",
    "enrolled_at",
    "last_seen",
    "last_scan_at",
    "last_scan_received_at",
    "reboot_required",
)
STATE_COLUMNS = ("device_id", "source", "observed_at", "patches")
CHUNK = 20_000


def variants(count: int, *, seed: int = 14) -> list[str]:
    """`count` agent scan documents (JSON text), each missing 4-16 patches of the catalogue;
    every one misses LNX-0000..0002 (the approved ones) with probability 1/2."""
    rng = random.Random(seed)
    documents = []
    for _ in range(count):
        ids = set(rng.sample(range(3, CATALOGUE), rng.randint(4, 16)))
        if rng.random() < 0.5:
            ids.update(range(3))
        missing = [{"id": f"LNX-{i:04}"} for i in sorted(ids)]
        documents.append(json.dumps({"missing": missing, "installed": []}))
    return documents


def fleet_rows(count: int, args: argparse.Namespace) -> Iterator[tuple[tuple[Any, ...], ...]]:
    """Chunks of (device row, patch-state row) pairs, generated lazily (constant memory)."""
    documents = variants(args.variants)
    rng = random.Random(7)
    enrolled = NOW - timedelta(days=30)
    chunk: list[tuple[Any, ...]] = []
    for n in range(count):
        device_id = str(uuid.UUID(int=rng.getrandbits(128)))
        name = f"srv-{n:07d}"
        # check-ins spread over the last poll interval, as a real fleet's are
        seen = NOW - timedelta(seconds=rng.randrange(3600))
        scanned = NOW - timedelta(seconds=rng.randrange(3600, 20 * 3600))  # within the day
        device = (
            device_id,
            f"{PARTNER}/c{n % args.tenants}",
            name,
            name,
            "linux",
            "Ubuntu",
            "24.04" if n % 3 else "22.04",
            "server",
            json.dumps({"ring": f"r{n % RINGS}", "site": f"s{n % 7}"}),
            "{}",
            "1.0",
            3600,
            enrolled,
            seen,
            scanned,
            scanned,
            False,
        )
        state = (device_id, "agent", scanned, documents[rng.randrange(len(documents))])
        chunk.append((device, state))
        if len(chunk) == CHUNK:
            yield tuple(chunk)
            chunk = []
    if chunk:
        yield tuple(chunk)


def catalogue_and_tenants(store: Any, args: argparse.Namespace) -> None:
    from controller.core.patches import PatchRecord  # noqa: PLC0415
    from controller.kinds.common import Classification, OsFamily, Severity  # noqa: PLC0415
    from controller.store import catalogue, tokens  # noqa: PLC0415

    catalogue.upsert_records(
        store,
        [
            PatchRecord(
                id=f"LNX-{i:04}",
                os=OsFamily.LINUX,
                vendor="ubuntu",
                title=f"patch {i}",
                cves=(f"CVE-2026-{i:04}",),
                rating=9.0 if i % 2 else 5.0,
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL if i % 2 else Severity.MODERATE,
                released=date(2026, 10, 1),
            )
            for i in range(CATALOGUE)
        ],
        now=NOW - timedelta(days=1),
    )
    with store.write() as conn:
        for client in range(args.tenants):
            tokens.ensure_tenant(conn, f"{PARTNER}/c{client}", now=NOW)


def build_postgres(url: str, args: argparse.Namespace) -> None:
    """The fleet by `COPY ... FROM STDIN`, one chunk per copy, in one transaction."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        for chunk in fleet_rows(args.devices, args):
            with conn.cursor().copy(
                f"COPY devices ({', '.join(DEVICE_COLUMNS)}) FROM STDIN"
            ) as copy:
                for device, _ in chunk:
                    copy.write_row(device)
            with conn.cursor().copy(
                f"COPY patch_states ({', '.join(STATE_COLUMNS)}) FROM STDIN"
            ) as copy:
                for _, state in chunk:
                    copy.write_row(state)
        conn.execute("ANALYZE")


def build_sqlite(store: Any, args: argparse.Namespace) -> None:
    """The fleet by multi-row inserts through the store's engine, one transaction."""
    import sqlalchemy as sa  # noqa: PLC0415

    from controller.store import schema  # noqa: PLC0415

    with store.write() as conn:
        for chunk in fleet_rows(args.devices, args):
            devices = [dict(zip(DEVICE_COLUMNS, d, strict=True)) for d, _ in chunk]
            for row in devices:
                row["labels"], row["facts"] = json.loads(row["labels"]), {}
            conn.execute(schema.devices.insert(), devices)
            states = [dict(zip(STATE_COLUMNS, s, strict=True)) for _, s in chunk]
            for row in states:
                row["patches"] = json.loads(row["patches"])
            conn.execute(sa.insert(schema.patch_states), states)


# --- the measured process ---------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The child process: two full passes of the service's reconciler; times and peaks."""
    import tracemalloc  # noqa: PLC0415

    from controller.runtime import apply  # noqa: PLC0415
    from controller.runtime.reconcile import PolicySource, Reconciler  # noqa: PLC0415
    from controller.store import open_store  # noqa: PLC0415

    if args.tracemalloc:
        tracemalloc.start()
    store = open_store(args.store_url)
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(args.repo), "main", args.state),
        clock=lambda: NOW,
        resync=timedelta(days=1),
    )
    steps: dict[str, float] = {}
    _time(reconciler, "observe_step", steps, "readSeconds")
    _time(reconciler.planner, "plan", steps, "planSeconds")
    _time(apply, "apply_plan", steps, "applySeconds")
    passes = []
    for label in ("first", "resync")[: args.passes]:
        if label == "resync":
            reconciler.resync = timedelta(0)  # due: the next pass is the periodic full pass
        started = time.perf_counter()
        outcome = reconciler.reconcile()
        seconds = time.perf_counter() - started
        if outcome.result != "applied":
            raise SystemExit(f"pass {label}: {outcome.result} {outcome.errors}")
        counts = outcome.counts
        passes.append(
            {
                "pass": label,
                "seconds": round(seconds, 2),
                **{k: round(v, 2) for k, v in steps.items()},
                "peakRssMiB": _peak_rss_mib(),
                "tracemallocPeakMiB": (
                    round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
                    if args.tracemalloc
                    else None
                ),
                **{
                    k: counts.get(k)
                    for k in ("devicesPlanned", "jobsIssued", "complianceWritten", "alertsRaised")
                },
            }
        )
        print(json.dumps(passes[-1]), file=sys.stderr, flush=True)  # progress, as it comes
        # the service's loop keeps the outcome but lets go of its plan as the next pass starts
        # (`ReconcileLoop._let_go_of_last_plan`)
        del outcome
        steps.clear()
        if args.tracemalloc:
            tracemalloc.reset_peak()
    store.close()
    return {"passes": passes}


def _time(owner: Any, name: str, steps: dict[str, float], key: str) -> None:
    """Wrap `owner.name` to add its wall time to `steps[key]` (the bench's own stopwatch)."""
    inner = getattr(owner, name)

    def timed(*a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            steps[key] = steps.get(key, 0.0) + time.perf_counter() - started

    setattr(owner, name, timed)


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


# --- the parent ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from controller.store import open_store  # noqa: PLC0415
    from controller.testing import PolicyRepo  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        repo = PolicyRepo(Path(tmp) / "repo")
        clients = ", ".join(f"c{i}" for i in range(args.tenants))
        repo.write("policies/policy.yaml", POLICY.format(clients=clients))
        repo.commit("policy")
        server, store_url = _database(args.url, tmp)
        try:
            started = time.perf_counter()
            if not _cloned(server, store_url, args):
                store = open_store(store_url)
                catalogue_and_tenants(store, args)
                if store.dialect == "postgresql":
                    store.close()
                    build_postgres(store_url, args)
                else:
                    build_sqlite(store, args)
                    store.close()
                _keep_template(server, store_url, args)
            built = time.perf_counter() - started
            child = (
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    "--store-url",
                    store_url,
                    "--repo",
                    str(repo.path),
                    "--state",
                    str(Path(tmp) / "state"),
                ]
                + (["--tracemalloc"] if args.tracemalloc else [])
                + ["--passes", str(args.passes)]
            )
            print(f"built in {built:.1f} s", file=sys.stderr, flush=True)
            # stderr passes through: each pass's figures as they come, or the failure
            done = subprocess.run(child, check=False, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise SystemExit("the measured process failed (its error is above)")
            measured = json.loads(done.stdout.strip().splitlines()[-1])  # after any log lines
        finally:
            if server is not None:
                _drop(server, store_url)
    return {
        "devices": args.devices,
        "store": "postgresql" if server else "sqlite",
        "tenants": args.tenants,
        "scanVariants": args.variants,
        "buildSeconds": round(built, 1),
        **measured,
    }


def _database(url: str, tmp: str) -> tuple[str | None, str]:
    """(server URL or None, the bench database's SQLAlchemy URL), created empty."""
    if url == "sqlite":
        return None, f"sqlite:///{tmp}/state.db"
    import psycopg  # noqa: PLC0415

    name = f"patchctl_bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return url, f"{base}/{name}"


def _template_comment(args: argparse.Namespace) -> str:
    """What a kept fleet was built with: a template is reused only for the same fleet."""
    return f"patchctl bench fleet: devices={args.devices} tenants={args.tenants} variants={args.variants}"


def _cloned(server: str | None, store_url: str, args: argparse.Namespace) -> bool:
    """With `--template NAME` on PostgreSQL: when NAME holds this fleet (its comment says so),
    make the bench database a copy of it (`CREATE DATABASE ... TEMPLATE`, a file copy: seconds
    where building a million devices takes minutes) and answer True."""
    if server is None or args.template is None:
        return False
    import psycopg  # noqa: PLC0415

    name = store_url.rsplit("/", 1)[1]
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (args.template,),
        ).fetchone()
        if row is None or row[0] != _template_comment(args):
            return False
        conn.execute(f"DROP DATABASE {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {args.template}")
    return True


def _keep_template(server: str | None, store_url: str, args: argparse.Namespace) -> None:
    """With `--template NAME` on PostgreSQL: keep a copy of the freshly built fleet as NAME
    (replacing one built with other figures) for the next runs to clone."""
    if server is None or args.template is None:
        return
    import psycopg  # noqa: PLC0415

    name = store_url.rsplit("/", 1)[1]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.template} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {args.template} TEMPLATE {name}")
        conn.execute(f"COMMENT ON DATABASE {args.template} IS '{_template_comment(args)}'")


def _drop(server: str, store_url: str) -> None:
    import psycopg  # noqa: PLC0415

    name = store_url.rsplit("/", 1)[1]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=20, help="clients of the one partner")
    parser.add_argument("--variants", type=int, default=64, help="distinct scan documents")
    parser.add_argument("--passes", type=int, choices=(1, 2), default=2, help="1: first only")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--template",
        default=None,
        help="PostgreSQL: keep the built fleet as this database and clone it on later runs "
        "with the same --devices/--tenants/--variants (drop it yourself when done)",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(measure(args)))
        return
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        },
        **run(args),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
