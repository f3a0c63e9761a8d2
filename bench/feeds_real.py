"""Benchmark: the feed importers on the real samples, and server-side applicability for a real host.

Reads every sample of `../shared/feeds/` (beside the repository; see its README) with the importer
of its format and reports records, errors and time per format. Then, for `debian12-host/`, builds
the applicability index from the bookworm-security and bookworm-updates `Packages` indexes, computes
the updates of the host from `dpkg-installed.tsv`, and checks them against what apt says
(`apt-list-upgradable.txt`, the packages it lists from the `-security` and `-updates` suites),
version for version. Index build and per-host computation are timed apart; the per-host figure is
measured with the version-comparison cache emptied before every run (a cold host), and also warm.

Then the same host through the store (`--fleet N`): the two indexes imported into a SQLite store
(`controller.runtime.feeds.import_records`), the host's inventory written as an agent report
(`controller.store.reports.write_reports`, which computes and stores its feed findings), the
stored findings checked equal to the pure computation, and the fleet pass timed over N devices
with that inventory (`controller.store.findings.reevaluate_fleet`, as after a feed import).

Then the Debian-advisory grouping of that host's updates (`controller.core.advisories`): each
update (`name=version`) is put under the advisory that covers it with the newest fix. With
`<samples>/debian-security/` (the tracker's `DSA/list`, `DLA/list` and JSON, not part of the
shared samples today) those are the real DSAs; without it, one stand-in advisory per source
package version of bookworm-security (`SRC-<source>=<version>`: what one DSA names), so the
figure is the number of approvals an operator would give instead of one per binary.

Target (DESIGN.md 9): one host <= 50 ms (Patchman takes about 7 s for the same host, and about
10 s to ingest a report and compute its updates).
Writes `bench/results/feeds_real.json` and prints it. Skips cleanly when the samples are absent.

    .venv/bin/python bench/feeds_real.py [--samples ../shared/feeds] [--runs 20]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.core import advisories, applicability, versions
from controller.core.applicability import ApplicabilityIndex, InstalledPackage, Inventory
from controller.core.patches import SOURCE_ARCH, FixedPackage, PatchRecord
from controller.feeds import FeedResult, read_feed
from controller.kinds.common import OsFamily
from controller.kinds.feeds import FeedFormat

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "feeds"
RESULTS = ROOT / "bench" / "results" / "feeds_real.json"
TARGET_HOST_MS = 50.0
HOST = "debian12-host"
INDEXES = ("bookworm-security-main-amd64-Packages.gz", "bookworm-updates-main-amd64-Packages.gz")
RELEASE = "debian:12"


@dataclass(frozen=True)
class Sample:
    """A sample of the shared folder and the importer that reads it."""

    path: str
    fmt: FeedFormat | None
    release: str | None = None
    note: str = ""


SAMPLES_BY_FORMAT = (
    Sample("ubuntu-osv", FeedFormat.OSV),
    Sample("debian-osv", FeedFormat.OSV),
    Sample("almalinux-osv", FeedFormat.OSV),
    Sample("rocky-osv", FeedFormat.OSV),
    Sample("redhat-osv", FeedFormat.OSV),
    Sample("alpine-osv", FeedFormat.OSV),
    Sample("redhat-csaf", FeedFormat.CSAF),
    Sample("msrc-cvrf/cvrfDocument-2024-Jan.xml", FeedFormat.MSRC),
    Sample("msrc-cvrf/cvrfDocument-2024-Feb.xml", FeedFormat.MSRC),
    Sample("msrc-cvrf/vuls-per-cve-json", FeedFormat.MSRC),
    Sample("updateinfo", FeedFormat.UPDATEINFO),
    Sample(f"{HOST}/{INDEXES[0]}", FeedFormat.DEB_PACKAGES, RELEASE),
    Sample(f"{HOST}/{INDEXES[1]}", FeedFormat.DEB_PACKAGES, RELEASE),
    Sample("msrc-cvrf/vuls-msuc-json", None, note="Microsoft Update Catalog entries: no importer"),
    Sample("almalinux-errata-json", None, note="errata.almalinux.org JSON: no importer"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--fleet", type=int, default=1000, help="devices for the fleet pass")
    args = parser.parse_args()
    if not args.samples.is_dir():
        print(f"skipped: no feed samples at {args.samples} (see shared/feeds/README.md)")
        return 0
    figures = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "import": import_samples(args.samples),
        "applicability": debian_host(args.samples / HOST, runs=args.runs),
        "store": debian_host_in_store(args.samples / HOST, runs=args.runs, fleet=args.fleet),
        "advisories": debian_host_advisories(args.samples),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))
    host = figures["applicability"]
    ok = host.get("matches_apt", False) or host.get("unexplained_differences") == 0
    ok = ok and figures["store"].get("equal_to_pure", True)
    return 0 if ok and host.get("host_ms_cold_median", 0) <= TARGET_HOST_MS else 1


# --- import ------------------------------------------------------------------------------------


def import_samples(root: Path) -> dict[str, object]:
    """Records, errors and seconds per format, and per sample."""
    per_sample: list[dict[str, object]] = []
    per_format: dict[str, dict[str, float]] = {}
    for sample in SAMPLES_BY_FORMAT:
        path = root / sample.path
        if sample.fmt is None or not path.exists():
            reason = sample.note or "absent"
            per_sample.append({"sample": sample.path, "skipped": reason})
            continue
        started = time.perf_counter()
        result = read_feed(path, sample.fmt, release=sample.release)
        seconds = time.perf_counter() - started
        per_sample.append(_sample_figures(sample, result, seconds))
        total = per_format.setdefault(sample.fmt.value, {"records": 0, "errors": 0, "seconds": 0.0})
        total["records"] += len(result.records)
        total["errors"] += len(result.errors)
        total["seconds"] += seconds
        print(
            f"{sample.fmt.value:13} {sample.path:58} {len(result.records):5} records "
            f"{len(result.errors):3} errors {seconds * 1000:8.1f} ms",
            file=sys.stderr,
        )
    rounded = {fmt: {k: round(v, 4) for k, v in total.items()} for fmt, total in per_format.items()}
    return {"per_format": rounded, "per_sample": per_sample}


def _sample_figures(sample: Sample, result: FeedResult, seconds: float) -> dict[str, object]:
    return {
        "sample": sample.path,
        "format": sample.fmt.value if sample.fmt else None,
        "records": len(result.records),
        "errors": len(result.errors),
        "first_errors": [str(error) for error in result.errors[:3]],
        "seconds": round(seconds, 4),
    }


# --- applicability on the real Debian host ------------------------------------------------


def debian_host(folder: Path, *, runs: int) -> dict[str, object]:
    """Index build time, per-host time, and the comparison with apt's own answer."""
    if not folder.is_dir():
        return {"skipped": f"no {folder}"}
    records: list[PatchRecord] = []
    for name in INDEXES:
        records.extend(read_feed(folder / name, FeedFormat.DEB_PACKAGES, release=RELEASE).records)
    inventory = read_dpkg_inventory(folder / "dpkg-installed.tsv")

    versions.compare_dpkg.cache_clear()
    started = time.perf_counter()
    index = ApplicabilityIndex(records)
    build_ms = (time.perf_counter() - started) * 1000

    cold = [_timed_host(index, inventory, cold=True) for _ in range(runs)]
    warm = [_timed_host(index, inventory, cold=False) for _ in range(runs)]
    findings = applicability.detect_missing(index, inventory)
    ours = {finding.package: finding.fixed for finding in findings}
    apt, apt_main_only = read_apt_upgradable(folder / "apt-list-upgradable.txt")
    differences = _differences(ours, apt, apt_main_only)
    figures: dict[str, object] = {
        "catalogue_records": len(records),
        "installed_packages": len(inventory.packages),
        "index_build_ms": round(build_ms, 2),
        "host_ms_cold_median": round(statistics.median(cold), 2),
        "host_ms_cold_max": round(max(cold), 2),
        "host_ms_warm_median": round(statistics.median(warm), 3),
        "target_host_ms": TARGET_HOST_MS,
        "runs": runs,
        "updates_computed": len(ours),
        "updates_apt_security_or_updates": len(apt),
        "matches_apt": not differences,
        "differences": differences,
        "unexplained_differences": sum(1 for d in differences if not d["explained"]),
    }
    _print_differences(differences)
    return figures


def debian_host_in_store(folder: Path, *, runs: int, fleet: int) -> dict[str, object]:
    """The host through the store's report path and the fleet pass (SQLite in a temp dir)."""
    if not folder.is_dir():
        return {"skipped": f"no {folder}"}
    from controller.runtime import feeds  # noqa: PLC0415 - the store part only
    from controller.store import devices, findings, open_store, reports  # noqa: PLC0415

    now = datetime.now(tz=UTC)
    records: list[PatchRecord] = []
    for name in INDEXES:
        records.extend(read_feed(folder / name, FeedFormat.DEB_PACKAGES, release=RELEASE).records)
    inventory = read_dpkg_inventory(folder / "dpkg-installed.tsv")
    pure = {
        f.patch_id for f in applicability.detect_missing(ApplicabilityIndex(records), inventory)
    }
    packages = [{"name": p.name, "version": p.version, "arch": p.arch} for p in inventory.packages]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/patchctl.db")
        try:
            started = time.perf_counter()
            feeds.import_records(store, FeedResult(records=tuple(records)), now=now)
            import_s = time.perf_counter() - started
            ids = _enrol_debian_hosts(store, devices, count=fleet, now=now)
            report = reports.Report(ids[0], inventory=reports.Inventory(None, None, packages))

            def write() -> float:
                with store.write() as conn:
                    begun = time.perf_counter()
                    reports.write_reports(conn, [report], now=now)
                    return (time.perf_counter() - begun) * 1000

            versions.compare_dpkg.cache_clear()
            first_ms = write()  # the index is built from the store here (first use)
            per_report = [write() for _ in range(runs)]
            with store.read() as conn:
                stored = {e["id"] for e in devices.device_patches(conn, ids[0])}
            with store.write() as conn:
                rows = [reports.Report(i, inventory=report.inventory) for i in ids[1:]]
                reports.write_reports(conn, rows, now=now)
            started = time.perf_counter()
            with store.write() as conn:
                evaluation = findings.reevaluate_fleet(conn, now=now)
            fleet_s = time.perf_counter() - started
        finally:
            store.close()
    return {
        "import_and_fleet_pass_s": round(import_s, 3),
        "report_ms_first_with_index_build": round(first_ms, 1),
        "report_ms_median": round(statistics.median(per_report), 2),
        "report_ms_max": round(max(per_report), 2),
        "stored_findings": len(stored),
        "equal_to_pure": stored == pure,
        "fleet_devices": evaluation.devices,
        "fleet_findings": evaluation.findings,
        "fleet_pass_s": round(fleet_s, 2),
        "fleet_ms_per_device": round(fleet_s * 1000 / max(evaluation.devices, 1), 2),
    }


def debian_host_advisories(root: Path) -> dict[str, object]:
    """The host's updates grouped under the advisories that cover them."""
    folder = root / HOST
    if not folder.is_dir():
        return {"skipped": f"no {folder}"}
    records: list[PatchRecord] = []
    for name in INDEXES:
        records.extend(read_feed(folder / name, FeedFormat.DEB_PACKAGES, release=RELEASE).records)
    catalogue = {record.id: record for record in records}
    inventory = read_dpkg_inventory(folder / "dpkg-installed.tsv")
    updates = [
        f.patch_id for f in applicability.detect_missing(ApplicabilityIndex(records), inventory)
    ]
    real = root / "debian-security"
    if real.is_dir():
        found = read_feed(real, FeedFormat.DEBIAN_SECURITY).records
        origin = f"{real} ({len(found)} advisories)"
    else:
        found = _stand_ins(records)
        origin = "stand-ins: one per source package version of bookworm-security"
    index = advisories.AdvisoryIndex(found)
    fixes = {r.id: r.packages for r in found}
    groups: dict[str, list[str]] = {}
    ungrouped: list[str] = []
    for patch_id in updates:
        candidate = advisories.candidate(catalogue[patch_id])
        covering = index.covering(candidate) if candidate else frozenset()
        if not covering:
            ungrouped.append(patch_id)
            continue
        newest = max(covering, key=lambda a: _newest_fix(fixes[a], candidate))
        groups.setdefault(newest, []).append(patch_id)
    largest = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))[:5]
    figures: dict[str, object] = {
        "advisories_from": origin,
        "updates": len(updates),
        "grouped_updates": sum(len(ids) for ids in groups.values()),
        "advisories": len(groups),
        "ungrouped_updates": len(ungrouped),
        "ungrouped_examples": sorted(ungrouped)[:10],
        "largest_groups": {advisory: len(ids) for advisory, ids in largest},
    }
    print(
        f"advisories: {len(updates)} updates -> {len(groups)} advisories "
        f"+ {len(ungrouped)} updates no advisory covers ({origin})",
        file=sys.stderr,
    )
    return figures


def _stand_ins(records: list[PatchRecord]) -> list[PatchRecord]:
    """One source-package advisory per source version of the security index."""
    sources: set[tuple[str, str]] = set()
    for record in records:
        if "security" not in record.source:
            continue
        package = record.packages[0]
        source_name = package.source_name or package.name
        sources.add((source_name, package.source_version or package.version))
    return [
        PatchRecord(
            id=f"SRC-{name}={version}",
            packages=(FixedPackage(name, version, RELEASE, SOURCE_ARCH, name),),
        )
        for name, version in sorted(sources)
    ]


_DPKG_ORDER = functools.cmp_to_key(versions.compare_dpkg)


def _newest_fix(packages: tuple[FixedPackage, ...], candidate: Any) -> Any:
    relevant = [p.version for p in packages if p.release == candidate.release] or ["0"]
    return _DPKG_ORDER(max(relevant, key=_DPKG_ORDER))


def _enrol_debian_hosts(store: Any, devices: Any, *, count: int, now: datetime) -> list[str]:
    with store.write() as conn:
        return [
            devices.enrol(
                conn,
                devices.Enrolment(
                    tenant="bench",
                    hostname=f"debian-{n:05d}",
                    os_family="linux",
                    os_name="Debian GNU/Linux",
                    os_version="12",
                    role="server",
                    agent_version="bench",
                ),
                poll_interval=60,
                now=now,
            ).device_id
            for n in range(max(count, 1))
        ]


def _timed_host(index: ApplicabilityIndex, inventory: Inventory, *, cold: bool) -> float:
    if cold:
        versions.compare_dpkg.cache_clear()
    started = time.perf_counter()
    applicability.detect_missing(index, inventory)
    return (time.perf_counter() - started) * 1000


def read_dpkg_inventory(path: Path) -> Inventory:
    """`dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\t${Status}\\n'` output."""
    packages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, version, arch, status = line.split("\t")
        if status.endswith(" installed"):
            packages.append(InstalledPackage(name=name, version=version, arch=arch))
    return Inventory(os=OsFamily.LINUX, release=RELEASE, packages=tuple(packages))


def read_apt_upgradable(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(packages apt upgrades from a -security or -updates suite, packages it takes from the
    main suite only) with the version apt would install."""
    from_updates: dict[str, str] = {}
    main_only: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "/" not in line or "[upgradable from" not in line:
            continue
        head, version = line.split()[:2]
        name, suites = head.split("/", 1)
        if any(s.endswith(("-security", "-updates")) for s in suites.split(",")):
            from_updates[name] = version
        else:
            main_only[name] = version
    return from_updates, main_only


def _differences(
    ours: dict[str, str], apt: dict[str, str], apt_main_only: dict[str, str]
) -> list[dict[str, object]]:
    found = []
    for name in sorted(set(ours) | set(apt)):
        if ours.get(name) == apt.get(name):
            continue
        main_version = apt_main_only.get(name)
        # apt installs the highest candidate of all suites; without the main index we cannot
        # see a newer point-release version there, so our update is right but not apt's pick.
        explained = (
            name not in apt
            and main_version is not None
            and versions.compare_dpkg(main_version, ours[name]) > 0
        )
        found.append(
            {
                "package": name,
                "computed": ours.get(name),
                "apt": apt.get(name)
                or (f"{main_version} (from the main suite)" if main_version else None),
                "explained": explained,
                "why": "apt picks a newer version from the main suite (not in the sample)"
                if explained
                else "",
            }
        )
    return found


def _print_differences(differences: list[dict[str, object]]) -> None:
    if not differences:
        print("applicability: equal to apt, version for version", file=sys.stderr)
        return
    print("applicability: differences with apt (package, computed, apt):", file=sys.stderr)
    for difference in differences:
        mark = "explained" if difference["explained"] else "UNEXPLAINED"
        print(
            f"  {difference['package']}: {difference['computed']} vs {difference['apt']}"
            f" [{mark}] {difference['why']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
