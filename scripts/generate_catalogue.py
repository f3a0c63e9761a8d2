# ruff: noqa: INP001
"""Generate the example patch catalogue: `feeds/example-catalogue.json` (native feed format).

A few thousand realistic, made-up records, the same on every run (seeded generator, fixed
dates): Windows KBs (monthly cumulative updates per product, .NET Framework rollups, servicing
stack updates, Defender definition updates, drivers) and Linux advisories (Ubuntu USN-, Debian
DSA-, Red Hat RHSA-, AlmaLinux ALSA-). Cumulative updates supersede the previous month's.
The ids the example policies name are always present, with fitting titles and dates:
KB5044284, KB5044033, KB5011048, KB5043050, USN-7123-1, USN-7100-1, DSA-5800-1, RHSA-2026:1234.

    .venv/bin/python scripts/generate_catalogue.py [--out feeds/example-catalogue.json] [--check]

`--check` exits 1 when the file on disk differs from what would be generated (for CI).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "feeds" / "example-catalogue.json"
SEED = 20261112
FIRST_MONTH = (2024, 11)
LAST_MONTH = (2026, 10)  # Windows: the snapshot is taken before November 2026's Patch Tuesday
LINUX_UNTIL = date(2026, 11, 12)

WINDOWS_PRODUCTS = (
    ("Windows Server 2022", "server-2022"),
    ("Windows Server 2019", "server-2019"),
    ("Windows Server 2016", "server-2016"),
    ("Windows 11 Version 23H2", "win11-23h2"),
    ("Windows 10 Version 22H2", "win10-22h2"),
)
# The products of each cumulative update as Microsoft's monthly documents name them, the OS build
# line and the update revision (UBR) of the first month; each month adds BUILD_STEP, so the
# fixed builds are plain arithmetic (no random draw: the rest of the catalogue stays the same).
CU_BUILDS = {
    "server-2022": (
        ("Windows Server 2022", "Windows Server 2022 (Server Core installation)"),
        "10.0.20348",
        2849,
    ),
    "server-2019": (
        ("Windows Server 2019", "Windows Server 2019 (Server Core installation)"),
        "10.0.17763",
        6532,
    ),
    "server-2016": (
        ("Windows Server 2016", "Windows Server 2016 (Server Core installation)"),
        "10.0.14393",
        7515,
    ),
    "win11-23h2": (
        (
            "Windows 11 Version 23H2 for x64-based Systems",
            "Windows 11 Version 23H2 for ARM64-based Systems",
        ),
        "10.0.22631",
        4460,
    ),
    "win10-22h2": (
        (
            "Windows 10 Version 22H2 for x64-based Systems",
            "Windows 10 Version 22H2 for 32-bit Systems",
            "Windows 10 Version 22H2 for ARM64-based Systems",
        ),
        "10.0.19045",
        5131,
    ),
}
BUILD_STEP = 70


def cu_builds(key: str, month_index: int) -> list[dict[str, str]]:
    """The fixed build per product of one month's cumulative update (native `builds`)."""
    products, line, first = CU_BUILDS[key]
    build = f"{line}.{first + BUILD_STEP * month_index}"
    return [{"product": product, "build": build} for product in products]


DOTNET_PRODUCTS = (
    ("Windows Server 2022", ".NET Framework 3.5, 4.8 and 4.8.1"),
    ("Windows Server 2019", ".NET Framework 3.5, 4.7.2 and 4.8"),
    ("Windows 11 Version 23H2", ".NET Framework 3.5 and 4.8.1"),
    ("Windows 10 Version 22H2", ".NET Framework 3.5, 4.8 and 4.8.1"),
)
DRIVER_VENDORS = (
    ("Intel", "System", "Intel(R) Management Engine Interface"),
    ("Intel", "Net", "Intel(R) Ethernet Connection I219-LM"),
    ("Realtek", "Net", "Realtek PCIe GbE Family Controller"),
    ("HP", "Printer", "HP Universal Printing PCL 6"),
    ("Dell", "Firmware", "Dell System Firmware Update"),
    ("Lenovo", "Firmware", "Lenovo ThinkPad BIOS Update"),
    ("Broadcom", "Net", "Broadcom NetXtreme Gigabit Ethernet"),
)
UBUNTU_PACKAGES = (
    "openssl",
    "linux",
    "curl",
    "nginx",
    "openssh",
    "sudo",
    "glibc",
    "python3.12",
    "libxml2",
    "git",
    "vim",
    "systemd",
    "postgresql-16",
    "bind9",
    "expat",
    "gnutls28",
    "ruby3.2",
    "php8.3",
)
DEBIAN_PACKAGES = (
    "openssl",
    "linux",
    "curl",
    "nginx",
    "openssh",
    "sudo",
    "glibc",
    "python3.11",
    "libxml2",
    "postgresql-15",
    "bind9",
    "exim4",
    "firefox-esr",
    "thunderbird",
    "chromium",
    "ghostscript",
)
REDHAT_PACKAGES = (
    "openssl",
    "kernel",
    "curl",
    "nginx",
    "openssh",
    "sudo",
    "glibc",
    "python3.11",
    "libxml2",
    "postgresql",
    "bind",
    "httpd",
    "podman",
    "grub2",
    "libssh",
    "krb5",
    "expat",
    "runc",
)
SEVERITY_BY_WORD = {
    "critical": (9.0, 9.8),
    "important": (7.0, 8.9),
    "moderate": (4.0, 6.9),
    "low": (0.1, 3.9),
}


@dataclass
class Catalogue:
    rng: random.Random
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_kb: int = 5_030_000
    cve_counter: dict[int, int] = field(default_factory=dict)

    def kb(self) -> str:
        while True:
            self.next_kb += self.rng.randint(3, 40)
            candidate = f"KB{self.next_kb}"
            if candidate not in self.records and candidate not in RESERVED:
                return candidate

    def cves(self, year: int, count: int) -> list[str]:
        found = []
        for _ in range(count):
            self.cve_counter[year] = self.cve_counter.get(year, 20_000) + self.rng.randint(1, 60)
            found.append(f"CVE-{year}-{self.cve_counter[year]}")
        return found

    def rating(self, severity: str) -> float:
        low, high = SEVERITY_BY_WORD.get(severity, (0.0, 0.0))
        return round(self.rng.uniform(low, high), 1) if high else 0.0

    def add(self, record: dict[str, Any]) -> None:
        if record["id"] in self.records:
            raise ValueError(f"duplicate id {record['id']}")
        self.records[record["id"]] = record


RESERVED = {"KB5044284", "KB5044033", "KB5011048", "KB5043050"}


def record(  # noqa: PLR0913 - one parameter per field of the native record
    *,
    patch_id: str,
    title: str,
    vendor: str,
    product: str,
    os: str,
    os_versions: list[str],
    classification: str,
    severity: str,
    released: date,
    rating: float | None,
    cves: list[str],
    reboot: bool,
) -> dict[str, Any]:
    return {
        "id": patch_id,
        "title": title,
        "vendor": vendor,
        "product": product,
        "os": os,
        "osVersions": os_versions,
        "classification": classification,
        "severity": severity,
        "releaseDate": released.isoformat(),
        "rating": rating,
        "cves": cves,
        "supersededBy": [],
        "rebootRequired": reboot,
    }


def patch_tuesday(year: int, month: int) -> date:
    first = date(year, month, 1)
    first_tuesday = first + timedelta(days=(1 - first.weekday()) % 7)
    return first_tuesday + timedelta(days=7)


def months() -> list[tuple[int, int]]:
    year, month = FIRST_MONTH
    found = []
    while (year, month) <= LAST_MONTH:
        found.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def windows(catalogue: Catalogue) -> None:
    monthly_updates(catalogue)
    catalogue.add(
        record(
            patch_id="KB5011048",
            title="Microsoft .NET Framework 4.8.1 for Windows 10 Version 22H2 and Windows "
            "Server 2022 (KB5011048)",
            vendor="Microsoft",
            product="Microsoft .NET Framework 4.8.1",
            os="windows",
            os_versions=["Windows 10 Version 22H2", "Windows Server 2022"],
            classification="update",
            severity="moderate",
            released=date(2025, 8, 12),
            rating=None,
            cves=[],
            reboot=True,
        )
    )
    definitions(catalogue)
    drivers(catalogue)


def monthly_updates(catalogue: Catalogue) -> None:
    """Cumulative updates per product, .NET rollups and quarterly servicing stack updates."""
    rng = catalogue.rng
    previous: dict[str, str] = {}
    for month_index, (year, month) in enumerate(months()):
        released = patch_tuesday(year, month)
        label = f"{year}-{month:02d}"
        for product, key in WINDOWS_PRODUCTS:
            latest = (year, month) == LAST_MONTH
            kb_id = "KB5044284" if latest and key == "server-2022" else catalogue.kb()
            if (year, month) == (2026, 9) and key == "server-2016":
                kb_id = "KB5043050"
            severity = "critical" if rng.random() < 0.7 else "important"
            catalogue.add(
                record(
                    patch_id=kb_id,
                    title=f"{label} Cumulative Update for {product} for x64-based Systems "
                    f"({kb_id})",
                    vendor="Microsoft",
                    product=product,
                    os="windows",
                    os_versions=[product],
                    classification="security",
                    severity=severity,
                    released=released,
                    rating=catalogue.rating(severity),
                    cves=catalogue.cves(year, rng.randint(3, 8)),
                    reboot=True,
                )
            )
            catalogue.records[kb_id]["builds"] = cu_builds(key, month_index)
            if key in previous:
                catalogue.records[previous[key]]["supersededBy"] = [kb_id]
            previous[key] = kb_id
        for product, frameworks in DOTNET_PRODUCTS:
            latest = (year, month) == LAST_MONTH
            kb_id = "KB5044033" if latest and product == "Windows Server 2022" else catalogue.kb()
            key = f"dotnet-{product}"
            severity = "important"
            catalogue.add(
                record(
                    patch_id=kb_id,
                    title=f"{label} Cumulative Update for {frameworks} for {product} ({kb_id})",
                    vendor="Microsoft",
                    product=f"Microsoft {frameworks}",
                    os="windows",
                    os_versions=[product],
                    classification="security",
                    severity=severity,
                    released=released,
                    rating=catalogue.rating(severity),
                    cves=catalogue.cves(year, rng.randint(1, 3)),
                    reboot=False,
                )
            )
            if key in previous:
                catalogue.records[previous[key]]["supersededBy"] = [kb_id]
            previous[key] = kb_id
        if month % 3 == 0:
            for product in ("Windows Server 2019", "Windows 10 Version 22H2"):
                kb_id = catalogue.kb()
                catalogue.add(
                    record(
                        patch_id=kb_id,
                        title=f"{label} Servicing Stack Update for {product} ({kb_id})",
                        vendor="Microsoft",
                        product=product,
                        os="windows",
                        os_versions=[product],
                        classification="critical",
                        severity="important",
                        released=released,
                        rating=None,
                        cves=[],
                        reboot=False,
                    )
                )


def definitions(catalogue: Catalogue) -> None:
    """Defender definitions: three builds a week; each supersedes the one before."""
    rng = catalogue.rng
    previous_definition = None
    day = date(2025, 11, 3)
    build = 421
    while day <= LINUX_UNTIL:
        for revision in range(3):
            version = f"1.{build}.{rng.randint(100, 999)}.0"
            patch_id = f"KB2267602-{version}"
            catalogue.add(
                record(
                    patch_id=patch_id,
                    title="Security Intelligence Update for Microsoft Defender Antivirus - "
                    f"KB2267602 (Version {version})",
                    vendor="Microsoft",
                    product="Microsoft Defender Antivirus",
                    os="windows",
                    os_versions=[],
                    classification="definition",
                    severity="low",
                    released=day + timedelta(days=2 * revision),
                    rating=None,
                    cves=[],
                    reboot=False,
                )
            )
            if previous_definition:
                catalogue.records[previous_definition]["supersededBy"] = [patch_id]
            previous_definition = patch_id
        day += timedelta(days=7)
        build += 1


def drivers(catalogue: Catalogue) -> None:
    rng = catalogue.rng
    for _ in range(320):
        vendor, kind, device = rng.choice(DRIVER_VENDORS)
        version = (
            f"{rng.randint(1, 30)}.{rng.randint(0, 99)}.{rng.randint(0, 9999)}.{rng.randint(0, 99)}"
        )
        kb_id = catalogue.kb()
        catalogue.add(
            record(
                patch_id=kb_id,
                title=f"{vendor} - {kind} - {version} ({device})",
                vendor=vendor,
                product=device,
                os="windows",
                os_versions=rng.sample([p for p, _ in WINDOWS_PRODUCTS], rng.randint(1, 3)),
                classification="driver",
                severity="unspecified",
                released=date(2024, 11, 1) + timedelta(days=rng.randint(0, 740)),
                rating=None,
                cves=[],
                reboot=rng.random() < 0.6,
            )
        )


def linux_series(  # noqa: PLR0913 - the shape of one vendor's advisory stream
    catalogue: Catalogue,
    *,
    ids: list[str],
    vendor: str,
    packages: tuple[str, ...],
    os_versions: list[list[str]],
    start: date,
    fixed: dict[str, tuple[str, str, date]],
    title: str,
) -> None:
    rng = catalogue.rng
    span = (LINUX_UNTIL - start).days
    for index, patch_id in enumerate(ids):
        if patch_id in fixed:
            package, severity, released = fixed[patch_id]
            versions = os_versions[-1]  # the fixed ones concern every release of the series
        else:
            package = rng.choice(packages)
            severity = rng.choices(("critical", "important", "moderate", "low"), (1, 4, 5, 2))[0]
            released = start + timedelta(days=span * index // max(1, len(ids)))
            versions = rng.choice(os_versions)
        kernel = package in {"linux", "kernel"}
        catalogue.add(
            record(
                patch_id=patch_id,
                title=title.format(package=package),
                vendor=vendor,
                product=package,
                os="linux",
                os_versions=versions,
                classification="security" if rng.random() < 0.92 or patch_id in fixed else "bugfix",
                severity=severity,
                released=released,
                rating=catalogue.rating(severity),
                cves=catalogue.cves(released.year, rng.randint(1, 4)),
                reboot=kernel or package in {"glibc", "systemd"},
            )
        )


def linux(catalogue: Catalogue) -> None:
    ubuntu = [["Ubuntu 24.04"], ["Ubuntu 22.04"], ["Ubuntu 22.04", "Ubuntu 24.04"]]
    linux_series(
        catalogue,
        ids=[f"USN-{n}-1" for n in range(6790, 7131)],
        vendor="Canonical",
        packages=UBUNTU_PACKAGES,
        os_versions=ubuntu,
        start=date(2024, 11, 4),
        fixed={
            "USN-7123-1": ("openssl", "important", date(2026, 11, 10)),
            "USN-7100-1": ("linux", "critical", date(2026, 10, 20)),
        },
        title="{package} vulnerabilities",
    )
    linux_series(
        catalogue,
        ids=[f"DSA-{n}-1" for n in range(5590, 5811)],
        vendor="Debian",
        packages=DEBIAN_PACKAGES,
        os_versions=[["Debian 12"], ["Debian 11"], ["Debian 11", "Debian 12"]],
        start=date(2024, 11, 5),
        fixed={"DSA-5800-1": ("openssl", "important", date(2026, 11, 9))},
        title="{package} security update",
    )
    rhel = [
        ["Red Hat Enterprise Linux 9"],
        ["Red Hat Enterprise Linux 8"],
        ["Red Hat Enterprise Linux 8", "Red Hat Enterprise Linux 9"],
    ]
    rhsa = [f"RHSA-2025:{n}" for n in range(100, 9600, 31)]
    rhsa += [f"RHSA-2026:{n}" for n in range(100, 1300, 17)] + ["RHSA-2026:1234"]
    linux_series(
        catalogue,
        ids=sorted(set(rhsa), key=lambda i: (i[5:9], int(i[10:]))),
        vendor="Red Hat",
        packages=REDHAT_PACKAGES,
        os_versions=rhel,
        start=date(2025, 1, 7),
        fixed={"RHSA-2026:1234": ("openssl", "important", date(2026, 11, 6))},
        title="Important: {package} security update",
    )
    alma = [["AlmaLinux 9"], ["AlmaLinux 8"], ["AlmaLinux 8", "AlmaLinux 9"]]
    linux_series(
        catalogue,
        ids=[f"ALSA-2025:{n}" for n in range(150, 9600, 41)]
        + [f"ALSA-2026:{n}" for n in range(120, 1300, 23)],
        vendor="AlmaLinux",
        packages=REDHAT_PACKAGES,
        os_versions=alma,
        start=date(2025, 1, 9),
        fixed={},
        title="{package} security update",
    )


def generate() -> dict[str, Any]:
    catalogue = Catalogue(rng=random.Random(SEED))  # noqa: S311 - example data, not security
    windows(catalogue)
    linux(catalogue)
    missing = sorted(
        {
            "KB5044284",
            "KB5044033",
            "KB5011048",
            "KB5043050",
            "USN-7123-1",
            "USN-7100-1",
            "DSA-5800-1",
            "RHSA-2026:1234",
        }
        - set(catalogue.records)
    )
    if missing:
        raise SystemExit(f"generator bug: required ids missing: {missing}")
    return {"records": sorted(catalogue.records.values(), key=lambda r: r["id"])}


def render(document: dict[str, Any]) -> str:
    # One record per line: small, and diffs stay readable.
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in document["records"]]
    return '{"records": [\n' + ",\n".join(lines) + "\n]}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render(generate())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.out} is stale: run scripts/generate_catalogue.py\n")
            raise SystemExit(1)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    count = text.count('"id":')
    sys.stdout.write(f"wrote {count} records ({len(text.encode()) // 1024} KiB) to {args.out}\n")


if __name__ == "__main__":
    main()
