"""The day-2 sub-commands: on the local database (the controller host's operator) and against a
running `patchctl serve` with an admin token in PATCHCTL_TOKEN (issue 16 item 4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from controller.runtime import audit
from controller.store import alerts as alert_store
from controller.store import jobs, open_store, schema, tokens
from controller.store.job_states import JobKind
from controller.testing import PROJECT_ROOT, PolicyRepo, Serve, run_cli
from controller.testing.stores import enrol_linux

LINUX = {"family": "linux", "name": "Ubuntu", "version": "24.04"}
EXAMPLE = str(PROJECT_ROOT)


@pytest.fixture
def local(tmp_path: Path) -> str:
    """A local database with device web-01 (acme/retail), a pending job and an alert."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(db)
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            device_id = enrol_linux(conn, "web-01", now=now)
            jobs.insert_jobs(
                conn,
                [
                    jobs.NewJob(
                        id="install-1",
                        device_id=device_id,
                        tenant="acme/retail",
                        kind=JobKind.INSTALL,
                        revision="main@sha1:" + "b" * 40,
                        patch_ids=("USN-1-1",),
                        deadline=now + timedelta(hours=1),
                    )
                ],
                now=now,
            )
            alert_store.add_alert(
                conn,
                alert_store.NewAlert(
                    kind="RebootPending", severity="warning", message="reboot", tenant="acme/retail"
                ),
                now=now,
            )
    finally:
        store.close()
    return db


def test_local_operations_change_the_database_and_are_audited(local: str) -> None:
    """cancel, ack, resolve and retire exit 0 once and 1 when repeated; each is in the trail."""
    steps = [
        ("jobs", "cancel", "install-1"),
        ("alerts", "ack", "1"),
        ("alerts", "resolve", "1"),
        ("devices", "retire", "web-01"),
    ]
    codes = [
        (
            run_cli(*step, "--db", local, "--reason", "maintenance")[0],
            run_cli(*step, "--db", local)[0],
        )
        for step in steps
    ]
    store = open_store(local)
    try:
        with store.read() as conn:
            trail = audit.query(conn, scope=None)
            state = conn.execute(sa.select(schema.jobs.c.state)).scalar_one()
    finally:
        store.close()
    assert [(0, 1)] * 4 == codes
    assert "cancelled" == state
    assert [
        "job.cancelled",
        "alert.acknowledged",
        "alert.resolved",
        "device.retired",
    ] == [e["type"] for e in trail]
    assert {"maintenance"} == {e["details"]["reason"] for e in trail}
    assert all(e["actor"].startswith("local operator ") for e in trail)


def test_an_unknown_job_exits_1_naming_it(local: str) -> None:
    """A job id that does not exist exits 1 with a message naming it."""
    code, _, err = run_cli("jobs", "retry", "install-nope", "--db", local)
    assert 1 == code
    assert "no job 'install-nope'" in err


def test_a_retired_device_is_not_explained(local: str, tmp_path: Path) -> None:
    """`explain` of a retired device says it is retired (it stopped with a StopIteration
    traceback: the resolver found it, the fleet observed for planning did not hold it)."""
    explain = ("explain", "web-01", "--db", local, "--repo", EXAMPLE, "--state-dir", str(tmp_path))
    before = run_cli(*explain)
    run_cli("devices", "retire", "web-01", "--db", local, "--reason", "decommissioned")
    code, _, err = run_cli(*explain)
    assert 0 == before[0], before[2]
    assert (2, "patchctl: device 'web-01' (acme/retail) is retired\n") == (code, err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tenant", "globex"), "--tenant: 'globex' is not declared by a Tenant document"),
        (("--tenant", "acme", "--kind", "read", "--max-uses", "2"), "--max-uses: only enrolment"),
    ],
    ids=["undeclared-tenant", "max-uses-on-a-read-token"],
)
def test_token_create_refuses(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """An undeclared tenant or a use limit on a read token exits 2; nothing is created."""
    db = tmp_path / "p.db"
    code, _, err = run_cli("token", "create", *args, "--repo", EXAMPLE, "--db", f"sqlite:///{db}")
    assert 2 == code
    assert message in err
    assert not db.exists()


def test_token_create_without_a_policy_repository_refuses(tmp_path: Path) -> None:
    """--repo that holds no policy repository exits 2 and says to pass --repo."""
    code, _, err = run_cli(
        "token", "create", "--tenant", "acme", "--repo", str(tmp_path), "--db", "sqlite://"
    )
    assert 2 == code
    assert "is not a policy repository" in err


def test_token_list_says_which_tokens_expired(tmp_path: Path) -> None:
    """`token list` shows each token as the service takes it now: an expired one is `expired`
    (it said `active` while the API refused it), a limited one shows until when."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(db)
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            issued = {
                name: tokens.create_token(
                    conn, kind=tokens.TokenKind.READ, tenant="acme", now=now, expires_at=expires
                ).id
                for name, expires in (
                    ("expired", now - timedelta(minutes=5)),
                    ("limited", datetime(2099, 1, 31, 12, 0, tzinfo=UTC)),
                    ("open", None),
                )
            }
    finally:
        store.close()
    code, out, err = run_cli("token", "list", "--db", db)
    states = {
        name: next(line for line in out.splitlines() if line.startswith(token_id))
        for name, token_id in issued.items()
    }
    assert 0 == code, err
    assert "  expired " in states["expired"]
    assert states["limited"].endswith("active until 2099-01-31 12:00 UTC")
    assert states["open"].endswith("  active")


def test_admin_and_limited_tokens_are_created(tmp_path: Path) -> None:
    """`--kind admin` makes a pca_ token; `--max-uses` is stored and listed."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    admin = json.loads(
        run_cli(
            "token",
            "create",
            "--tenant",
            "acme/retail",
            "--kind",
            "admin",
            "--json",
            "--repo",
            EXAMPLE,
            "--db",
            db,
        )[1]
    )
    limited = json.loads(
        run_cli(
            "token",
            "create",
            "--tenant",
            "acme",
            "--max-uses",
            "5",
            "--json",
            "--repo",
            EXAMPLE,
            "--db",
            db,
        )[1]
    )
    listed = json.loads(run_cli("token", "list", "--json", "--db", db)[1])
    assert admin["token"].startswith("pca_")
    assert 5 == limited["maxUses"]
    assert {admin["id"]: (None, 0), limited["id"]: (5, 0)} == {
        t["id"]: (t["maxUses"], t["uses"]) for t in listed
    }


@pytest.mark.slow
def test_remote_operations_use_the_admin_token(tmp_path: Path) -> None:
    """Through a running service: rotate-token prints a new device token that works while the
    old one is refused; a sibling's admin gets exit 1 (404), a read token exit 2 (403); token
    list shows the scope's tokens only."""
    repo = PolicyRepo(tmp_path / "repo")
    repo.copy_example()
    repo.commit("example")
    serve = Serve(database_url=f"sqlite:///{tmp_path / 'p.db'}", state_dir=tmp_path / "state")
    retail_admin = serve.token("admin", "acme/retail")
    logistics_admin = serve.token("admin", "acme/logistics")
    reader = serve.token("read", "acme/retail")
    enrolling = serve.token("enrollment", "acme/retail")
    serve.start("--repo", str(repo.path), "--interval", "1h")
    try:
        answer = httpx.post(
            f"{serve.base}/api/v1/enroll",
            json={"enrollmentToken": enrolling, "hostname": "shop-01", "os": LINUX,
                  "agentVersion": "1", "role": "server", "labels": {}},
            timeout=10,
        )  # fmt: skip
        device, old = answer.json()["deviceId"], answer.json()["deviceToken"]
        server = ("--server", serve.base)
        sibling = run_cli(
            "devices", "rotate-token", "shop-01", *server, env={"PATCHCTL_TOKEN": logistics_admin}
        )
        read_only = run_cli(
            "devices", "rotate-token", "shop-01", *server, env={"PATCHCTL_TOKEN": reader}
        )
        rotated = run_cli(
            "devices", "rotate-token", "shop-01", *server, env={"PATCHCTL_TOKEN": retail_admin}
        )
        listed = run_cli("token", "list", "--json", *server, env={"PATCHCTL_TOKEN": retail_admin})
        poll = f"{serve.base}/api/v1/devices/{device}/jobs"
        new = rotated[1].strip()
        with_old = httpx.get(poll, headers={"Authorization": f"Bearer {old}"}, timeout=10)
        with_new = httpx.get(poll, headers={"Authorization": f"Bearer {new}"}, timeout=10)
    finally:
        serve.stop()
    assert (1, "404") == (sibling[0], sibling[2].split(" answered ")[1][:3])
    assert (2, "403") == (read_only[0], read_only[2].split(" answered ")[1][:3])
    assert 0 == rotated[0], rotated[2]
    assert new.startswith("pcd_")
    assert (401, 200) == (with_old.status_code, with_new.status_code)
    assert {"acme/retail"} == {t["tenant"] for t in json.loads(listed[1])}
