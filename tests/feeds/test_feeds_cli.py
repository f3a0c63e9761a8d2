"""`patchctl feed import`: counts, and the fleet re-evaluated when the catalogue changed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.cli.feeds import ProgressLine
from controller.runtime.feeds import Progress
from controller.store import devices, open_store, reports

FEED = """\
- id: KB9000001
  title: 2099-01 Cumulative Update
  os: windows
  classification: security
  severity: Critical
  builds: [{product: Windows Server 2019, build: 10.0.17763.9001}]
"""


def windows_device_with_inventory(url: str) -> str:
    store = open_store(url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    try:
        with store.write() as conn:
            enrolment = devices.Enrolment(
                tenant="acme",
                hostname="win-01",
                os_family="windows",
                os_name="Windows Server 2019",
                os_version="1809",
                role="server",
                agent_version="1.0.0",
            )
            device_id = devices.enrol(conn, enrolment, poll_interval=60, now=now).device_id
            inventory = reports.Inventory("10.0.17763.5000", None)
            reports.write_reports(conn, [reports.Report(device_id, inventory=inventory)], now=now)
    finally:
        store.close()
    return device_id


def test_import_reevaluates_the_fleet_then_is_idempotent(tmp_path: Path) -> None:
    """The first import finds the KB missing on the stored inventory; the second changes nothing."""
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    windows_device_with_inventory(url)
    (tmp_path / "feed.yaml").write_text(FEED)
    args = ["feed", "import", str(tmp_path / "feed.yaml"), "--format", "native", "--db", url]
    first = CliRunner().invoke(main, [*args, "--json"])
    second = CliRunner().invoke(main, args)
    fleet = {"devices": 1, "covered": 1, "affected": 1, "findings": 1, "changed": 1}
    assert (0, 1, fleet) == (
        first.exit_code,
        json.loads(first.output)["new"],
        json.loads(first.output)["fleet"],
    )
    assert "fleet: catalogue unchanged, findings not recomputed" in second.output


def debian_device_with_inventory(url: str) -> str:
    store = open_store(url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    packages = [
        {
            "name": "telnet",
            "version": "0.17+2.4-2+deb12u3",
            "arch": "amd64",
            "source": "inetutils (2:2.4-2+deb12u3)",
        },
        {
            "name": "bsdutils",
            "version": "1:2.38.1-5+deb12u4",
            "arch": "amd64",
            "source": "util-linux (2.38.1-5+deb12u4)",
        },
        {"name": "libssl3", "version": "3.0.14-1~deb12u2", "arch": "amd64", "source": "openssl"},
    ]
    try:
        with store.write() as conn:
            enrolment = devices.Enrolment(
                tenant="acme",
                hostname="deb-01",
                os_family="linux",
                os_name="Debian GNU/Linux",
                os_version="12.8",
                role="server",
                agent_version="1.0.0",
            )
            device_id = devices.enrol(conn, enrolment, poll_interval=60, now=now).device_id
            inventory = reports.Inventory(None, None, packages)
            reports.write_reports(conn, [reports.Report(device_id, inventory=inventory)], now=now)
    finally:
        store.close()
    return device_id


def test_debian_advisories_found_through_source_versions(tmp_path: Path) -> None:
    """DSA records match the sources of a host's binaries: two of three advisories are missing."""
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    device_id = debian_device_with_inventory(url)
    fixtures = Path(__file__).parent / "fixtures" / "debsecurity"
    args = ["feed", "import", str(fixtures), "--format", "debian-security", "--db", url, "--json"]
    result = CliRunner().invoke(main, args)
    store = open_store(url)
    try:
        with store.read() as conn:
            states = devices.load_patch_states(conn)[device_id]
    finally:
        store.close()
    missing = sorted(entry["id"] for entry in states["feed"][1])
    assert (0, 5, ["DSA-6010-1", "DSA-6021-1"]) == (
        result.exit_code,
        json.loads(result.output)["new"],
        missing,
    )


def test_import_help_names_the_progress_line() -> None:
    """`--help` says where progress goes and how to silence it."""
    result = CliRunner().invoke(main, ["feed", "import", "--help"])
    assert (0, True, True) == (
        result.exit_code,
        "--quiet" in result.output and "--chunk-size" in result.output,
        "devices evaluated / total" in " ".join(result.output.split()),
    )


def test_import_in_small_chunks_keeps_stdout_json(tmp_path: Path) -> None:
    """With one device per chunk, --json stdout is the outcome alone (no progress line)."""
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    windows_device_with_inventory(url)
    (tmp_path / "feed.yaml").write_text(FEED)
    args = ["feed", "import", str(tmp_path / "feed.yaml"), "--format", "native", "--db", url]
    result = CliRunner().invoke(main, [*args, "--json", "--chunk-size", "1"])
    assert (0, 1) == (result.exit_code, json.loads(result.stdout)["fleet"]["affected"])


@pytest.mark.parametrize(
    ("enabled", "seconds", "expected"),
    [
        (True, 2.0, "\rfleet: 1,500/3,000 devices evaluated (750/s)\x1b[K\n"),
        (True, 0.5, ""),  # a short run prints nothing
        (False, 2.0, ""),  # not a terminal, or --quiet
    ],
    ids=["shown", "short-run", "disabled"],
)
def test_progress_line(enabled: bool, seconds: float, expected: str) -> None:
    """The line is rewritten in place on a terminal, and ended once."""
    stream = io.StringIO()
    line = ProgressLine(stream, enabled=enabled)
    line(Progress(done=1500, total=3000, seconds=seconds))
    line.close()
    assert expected == stream.getvalue()


def test_failed_counts_records_and_every_error_is_listed(tmp_path: Path) -> None:
    """A record with three errors is one failed record; the three errors name file and field."""
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    feed = tmp_path / "n.json"
    feed.write_text('[{"id":"X-1","severity":"nuclear","rating":11,"bogus":1},{"id":"X-2"}]')
    args = ["feed", "import", str(feed), "--format", "native", "--db", url]
    as_json = CliRunner().invoke(main, [*args, "--json"])
    as_text = CliRunner().invoke(main, args)
    answer = json.loads(as_json.stdout)
    assert (1, 1, 1) == (as_json.exit_code, answer["new"], answer["failed"])
    assert [f"{feed}:/0/{field}" for field in ("severity", "rating", "bogus")] == [
        error.split(": ", 1)[0] for error in answer["errors"]
    ]
    assert (1, True) == (
        as_text.exit_code,
        "0 new, 0 updated, 1 unchanged, 1 failed" in as_text.stdout,
    )


@pytest.mark.parametrize("content", [None, "README.md"], ids=["empty", "no-document-of-the-format"])
def test_a_directory_without_documents_is_a_usage_error(
    tmp_path: Path, content: str | None
) -> None:
    """An empty mirror (or the wrong --format) exits 2 naming the path, and creates no database."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    if content is not None:
        (mirror / content).write_text("not a feed")
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    args = ["feed", "import", str(mirror), "--format", "updateinfo", "--db", url]
    result = CliRunner().invoke(main, args)
    assert (2, f"patchctl: {mirror}: no updateinfo document in this directory", False) == (
        result.exit_code,
        result.stderr.split(" (", 1)[0],
        (tmp_path / "patchctl.db").exists(),
    )
