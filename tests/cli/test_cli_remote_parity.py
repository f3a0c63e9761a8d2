"""The read commands give the same answer on the controller's database and against a running
`patchctl serve` with --server and a read token: `devices`, `jobs`, `jobs show`, `explain`,
`patches` and `audit` print identical `--json` documents for the same data, `--limit` says on
stderr when it cut a listing, and `report --server` writes the scope's files (issue 16, items 3
and 6)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from controller.testing import PROJECT_ROOT, PolicyRepo, Serve, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a real serve and 17 commands

LINUX = {"family": "linux", "name": "Ubuntu", "version": "24.04"}


def enrol(serve: Serve, token: str, hostname: str) -> str:
    answer = httpx.post(
        f"{serve.base}/api/v1/enroll",
        json={
            "enrollmentToken": token,
            "hostname": hostname,
            "os": LINUX,
            "agentVersion": "1",
            "role": "server",
            "labels": {"role": "web"},
        },
        timeout=10,
    )
    assert 200 == answer.status_code, answer.text
    device: str = answer.json()["deviceId"]
    return device


def test_local_and_remote_answers_are_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read command's --json is the same from the database (--tenant acme) and from the
    service (an acme read token); a client token gets 404 for a sibling's job."""
    repo = PolicyRepo(tmp_path / "repo")
    repo.copy_example()
    repo.commit("example")
    db = f"sqlite:///{tmp_path / 'p.db'}"
    serve = Serve(database_url=db, state_dir=tmp_path / "state")
    imported = serve.patchctl(
        "feed",
        "import",
        str(PROJECT_ROOT / "feeds" / "example-catalogue.json"),
        "--format",
        "native",
    )
    assert 0 == imported.returncode, imported.stderr
    partner = serve.token("read", "acme")
    retail = serve.token("read", "acme/retail")
    enrolling = {t: serve.token("enrollment", t) for t in ("acme/retail", "acme/logistics")}
    serve.start("--repo", str(repo.path), "--interval", "1h")
    operator = tmp_path / "operator"
    operator.mkdir()
    monkeypatch.chdir(operator)
    local = ("--db", db, "--state-dir", str(tmp_path / "operator-state"))
    remote = ("--server", serve.base)
    try:
        shop = enrol(serve, enrolling["acme/retail"], "shop-web-01")
        enrol(serve, enrolling["acme/logistics"], "depot-db-01")
        listed = serve.wait_for(
            "a scan job per device",
            lambda: len(jobs := serve.get("/api/v1/jobs", partner)["jobs"]) == 2 and jobs,
        )
        depot_job = next(j["id"] for j in listed if j["deviceName"] == "depot-db-01")
        pairs = {
            "devices": (("devices", "--json", "--tenant", "acme"), ("devices", "--json")),
            "devices --limit 1": (
                ("devices", "--json", "--limit", "1", "--tenant", "acme"),
                ("devices", "--json", "--limit", "1"),
            ),
            "jobs": (("jobs", "--json", "--tenant", "acme"), ("jobs", "--json")),
            "jobs show": (("jobs", "show", depot_job, "--json"),) * 2,
            "explain": (
                ("explain", "shop-web-01", "--json", "--repo", str(repo.path)),
                ("explain", "shop-web-01", "--json"),
            ),
            "explain text": (
                ("explain", shop, "--repo", str(repo.path)),
                ("explain", shop),
            ),
            "patches": (("patches", "--json", "--limit", "2"),) * 2,
            "audit": (("audit", "--json", "--no-sync", "--tenant", "acme"), ("audit", "--json")),
        }
        answers = {
            name: (
                run_cli(*mine, *local),
                run_cli(*theirs, *remote, env={"PATCHCTL_TOKEN": partner}),
            )
            for name, (mine, theirs) in pairs.items()
        }
        foreign = run_cli("jobs", "show", depot_job, *remote, env={"PATCHCTL_TOKEN": retail})
        unexplained = run_cli("explain", "depot-db-01", *remote, env={"PATCHCTL_TOKEN": retail})
        report = run_cli(
            "report", *remote, "--out", str(tmp_path / "out"), env={"PATCHCTL_TOKEN": retail}
        )
        refused = run_cli("report", *remote, "--write-back", env={"PATCHCTL_TOKEN": retail})
    finally:
        serve.stop()
    assert_identical(answers)
    assert_contents(answers, shop=shop)
    assert 2 == foreign[0]
    assert f"answered 404: no job '{depot_job}' in tenant scope 'acme/retail'" in foreign[2]
    assert 2 == unexplained[0]
    assert "answered 404: no device 'depot-db-01' in scope 'acme/retail'" in unexplained[2]
    assert 0 == report[0], report[2]
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")
    )
    assert written == sorted(
        line.removeprefix(f"wrote {tmp_path / 'out'}/") for line in report[1].splitlines()
    )
    markdown = next((tmp_path / "out").rglob("*.md")).read_text(encoding="utf-8")
    assert ("shop-web-01" in markdown, "depot-db-01" in markdown) == (True, False)
    assert 2 == refused[0]
    assert "--write-back and --now work on the controller's own database only" in refused[2]


Answers = dict[str, tuple[tuple[int, str, str], tuple[int, str, str]]]


def assert_identical(answers: Answers) -> None:
    """Both sides exit 0 and print the same document."""
    for name, ((code, out, err), (r_code, r_out, r_err)) in answers.items():
        assert (0, 0) == (code, r_code), (name, err, r_err)
        if name == "audit":  # the trail's syncedAt moves with every pass of the loop
            mine, theirs = json.loads(out), json.loads(r_out)
            assert mine["events"] == theirs["events"], name
            assert mine["events"], name
            assert {b: t["tip"] for b, t in mine["trail"].items()} == {
                b: t["tip"] for b, t in theirs["trail"].items()
            }
        else:
            assert out == r_out, name


def assert_contents(answers: Answers, *, shop: str) -> None:
    """The documents hold what the fleet holds."""
    devices = json.loads(answers["devices"][0][1])
    assert [("depot-db-01", True), ("shop-web-01", True)] == [
        (d["name"], d["online"]) for d in devices
    ]
    cut = "patchctl: showing the first 1 devices; more match"
    assert (cut, cut) == tuple(err[: len(cut)] for _, _, err in answers["devices --limit 1"])
    shown = json.loads(answers["jobs show"][0][1])
    assert ("depot-db-01", "scan", []) == (shown["deviceName"], shown["kind"], shown["events"])
    explained = json.loads(answers["explain"][0][1])
    assert ("shop-web-01", "acme/retail") == (
        explained["device"]["name"],
        explained["device"]["tenant"],
    )
    assert answers["explain text"][0][1].startswith(f"acme/retail/shop-web-01 ({shop}): linux")
    assert 2 == len(json.loads(answers["patches"][0][1]))
    assert (
        "1939 of 1939 patches match; showing the first 2 (raise --limit)\n"
        == answers["patches"][1][2]
    )
