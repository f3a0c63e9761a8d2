"""What sharding a full pass by device could give on this machine: a floor, not a design.

Issue 14 asks for a full pass over 100,000 devices in 2 s; one process takes about 3.5-3.9 s
(`bench/incremental.py`), spread over per-device work (docs/architecture.md, "Where a full
pass's time goes"). The design that analysis points at gives each of several processes a
shard of the fleet. Before anyone builds it, this measures, in one run on bench/incremental.py's
fleet (`--devices`, real git repository, real SQLite store):

- `singleSeconds`: the service's periodic resync in one process (`Reconciler.reconcile` with
  the resync due: read everything, compare with the incremental state, plan every device,
  compare every compliance row, save status), as bench/incremental.py times it;
- `shardedSeconds`: the same devices split by id over `--shards` forked processes (default:
  the cores), each reading its devices and their jobs (`store.observed.load_devices` of its
  ids), planning them with its own `IncrementalPlanner` and comparing their compliance rows
  (`runtime.apply.apply_plan`, `replanned` = its devices; SQLite's one writer takes the shards
  in turn); wall time from the first fork to the last child's end, with each shard's phases.

Nothing couples the shards here: no rollout quotas settled between them, no grouped alerts,
pending-approval shards or status, no drift comparison, and the policy is loaded once before
the fork. A real sharded reconciler adds all of that, so `shardedSeconds` is the floor the
design can reach on this machine, and `singleSeconds / shardedSeconds` its best speed-up.

    .venv/bin/python bench/shard_probe.py [--devices 100000] [--shards 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import incremental  # noqa: E402 - bench/incremental.py: the fleet, the policy, the clock

RESULTS = ROOT / "bench" / "results" / "shard_probe.json"


def shard_pass(url: str, desired: Any, now: Any, ids: list[str], answer: Any) -> None:
    """One shard's pass in a forked child: read its devices, plan them, compare compliance;
    sends its phase seconds through `answer`."""
    from controller.sources import gcpause  # noqa: PLC0415

    with gcpause.paused():  # as `Reconciler.reconcile` runs a pass
        _shard_pass(url, desired, now, ids, answer)


def _shard_pass(url: str, desired: Any, now: Any, ids: list[str], answer: Any) -> None:
    from controller.core.incremental import IncrementalPlanner  # noqa: PLC0415
    from controller.core.observed import JobLedger  # noqa: PLC0415
    from controller.runtime import apply  # noqa: PLC0415
    from controller.runtime.observe import JOB_HORIZON  # noqa: PLC0415
    from controller.store import findings, open_store  # noqa: PLC0415
    from controller.store import observed as stored  # noqa: PLC0415

    started = time.perf_counter()
    store = open_store(url, migrate=False)  # never the parent's engine across a fork
    with store.read() as conn:
        view = findings.current_catalogue(conn)
        rows = stored.load_devices(conn, view, ids)
        jobs = JobLedger.of(stored.load_jobs(conn, since=now - JOB_HORIZON, device_ids=ids))
    observed = stored.assemble(view, rows, jobs)
    read = time.perf_counter()
    planner = IncrementalPlanner()
    plan = planner.plan(desired, observed, now=now)
    planned = time.perf_counter()
    tenants = {device.id: device.tenant for device in observed.devices}
    with store.write() as conn:
        applied = apply.apply_plan(conn, plan, tenants=tenants, now=now, replanned=set(ids))
    store.close()
    done = time.perf_counter()
    answer.send(
        {
            "devices": len(ids),
            "readSeconds": round(read - started, 3),
            "planSeconds": round(planned - read, 3),
            "applySeconds": round(done - planned, 3),
            "complianceWritten": applied.compliance_written,
        }
    )


def probe(count: int, shards: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        _repo, store, reconciler, clock, ids = incremental.setup(tmp, count, 20)
        incremental.passes(reconciler, clock)  # the first pass writes every compliance row
        reconciler.resync = timedelta(0)  # due at the next pass
        single = incremental.passes(reconciler, clock)
        desired = reconciler.enforced_state()
        now = clock.advance(1)
        store.close()
        context = multiprocessing.get_context("fork")
        pipes, children = [], []
        started = time.perf_counter()
        for n in range(shards):
            receive, send = context.Pipe(duplex=False)
            child = context.Process(
                target=shard_pass,
                args=(f"sqlite:///{tmp}/state.db", desired, now, ids[n::shards], send),
            )
            child.start()
            pipes.append(receive)
            children.append(child)
        answers = [pipe.recv() for pipe in pipes]
        for child in children:
            child.join()
        sharded = time.perf_counter() - started
    return {
        "devices": count,
        "shards": shards,
        "singleSeconds": single["seconds"],
        "shardedSeconds": round(sharded, 3),
        "speedUp": round(single["seconds"] / sharded, 2),
        "shardPasses": answers,
        "allExitedCleanly": all(child.exitcode == 0 for child in children),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the figures")
    args = parser.parse_args()
    result = {
        "benchmark": "shard-probe",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        **probe(args.devices, args.shards),
        "loadAverageAfter": [round(x, 2) for x in os.getloadavg()],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
