"""Read commands against a running `patchctl serve` with `--server` and a read token from the
environment: no database file on the operator's side, answers scoped to the token (issue 16,
item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.testing import PolicyRepo, Serve

pytestmark = pytest.mark.slow

LINUX = {"family": "linux", "name": "Ubuntu", "version": "24.04"}


def cli(
    *args: str, token: str | None, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    env = {"PATCHCTL_TOKEN": token} if token is not None else {"PATCHCTL_TOKEN": ""}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


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


def test_read_commands_ask_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`devices`, `jobs`, `alerts` and `status` with --server show the token's tenant only, in
    a folder with no state at all; a missing or wrong token exits 2 with the reason."""
    repo = PolicyRepo(tmp_path / "repo")
    repo.copy_example()
    repo.commit("example")
    serve = Serve(database_url=f"sqlite:///{tmp_path / 'p.db'}", state_dir=tmp_path / "state")
    retail = serve.token("read", "acme/retail")
    enrolling = {t: serve.token("enrollment", t) for t in ("acme/retail", "acme/logistics")}
    serve.start("--repo", str(repo.path), "--interval", "1s")
    elsewhere = tmp_path / "operator"
    elsewhere.mkdir()
    try:
        enrol(serve, enrolling["acme/retail"], "shop-web-01")
        enrol(serve, enrolling["acme/logistics"], "depot-db-01")
        serve.wait_for("a scan job", lambda: serve.get("/api/v1/jobs", retail)["jobs"])
        code, listed, err = cli(
            "devices",
            "--server",
            serve.base,
            "--json",
            token=retail,
            cwd=elsewhere,
            monkeypatch=monkeypatch,
        )
        table = cli(
            "devices", "--server", serve.base, token=retail, cwd=elsewhere, monkeypatch=monkeypatch
        )
        jobs = cli(
            "jobs",
            "--server",
            serve.base,
            "--json",
            token=retail,
            cwd=elsewhere,
            monkeypatch=monkeypatch,
        )
        status = cli(
            "status", "--server", serve.base, token=retail, cwd=elsewhere, monkeypatch=monkeypatch
        )
        alerts = cli(
            "alerts", "--server", serve.base, token=retail, cwd=elsewhere, monkeypatch=monkeypatch
        )
        tokenless = cli(
            "devices", "--server", serve.base, token=None, cwd=elsewhere, monkeypatch=monkeypatch
        )
        wrong = cli(
            "devices",
            "--server",
            serve.base,
            token="pcr_nope",  # noqa: S106 - a wrong token on purpose
            cwd=elsewhere,
            monkeypatch=monkeypatch,
        )
    finally:
        serve.stop()
    assert 0 == code, err
    assert ["shop-web-01"] == [d["name"] for d in json.loads(listed)]
    assert "shop-web-01" in table[1]
    assert "depot-db-01" not in table[1]
    assert {"acme/retail"} == {j["tenant"] for j in json.loads(jobs[1])}
    assert 0 == status[0], status[2]
    assert "applied   main@sha1:" in status[1]
    assert 0 == alerts[0], alerts[2]
    assert 2 == tokenless[0]
    assert "--server needs a read token in PATCHCTL_TOKEN" in tokenless[2]
    assert 2 == wrong[0]
    assert "answered 401" in wrong[2]
    assert [] == sorted(p.name for p in elsewhere.iterdir())
