"""PatchFeed objects refreshed on their schedule from files of a real policy repository (read at
the revision, from git objects), and bad feeds recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import git

from controller.core.desired import DesiredState
from controller.kinds.feeds import PatchFeed
from controller.runtime import feeds
from controller.runtime.feedsources import FeedSources
from controller.store import alerts as alert_store
from controller.store import catalogue, devices, reports
from controller.store import status as status_store

if TYPE_CHECKING:
    from pathlib import Path

    from controller.store import Store
    from controller.testing import SettableClock

GOOD = """\
- id: KB9000001
  title: 2099-01 Cumulative Update
  os: windows
  classification: security
  severity: Critical
  builds: [{product: Windows Server 2019, build: 10.0.17763.9001}]
"""
UPDATED = GOOD.replace("severity: Critical", "severity: Important")


def patch_feed(name: str, source: str, *, refresh: str = "6h") -> PatchFeed:
    return PatchFeed.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "PatchFeed",
            "metadata": {"name": name, "tenant": "acme"},
            "spec": {"format": "native", "source": source, "refresh": refresh},
        }
    )


def state(*objects: PatchFeed) -> DesiredState:
    """The feeds at a revision still to be committed: `refresh` commits the files first."""
    return DesiredState(revision=None, objects=objects)


def refresh(store: Store, desired: DesiredState, clock: SettableClock, repo: Path):
    """Commit the repository's files (tmp_path), then refresh at that commit."""
    objects = git.Repo.init(repo, initial_branch="main")
    try:
        (repo / ".git" / "info" / "exclude").write_text(".state/\n")
        objects.git.add(all=True)
        actor = git.Actor("Alice Admin", "alice@example.com")
        sha = objects.index.commit("feeds", author=actor, committer=actor).hexsha
        at_commit = DesiredState(revision=f"main@sha1:{sha}", objects=desired.objects)
        sources = FeedSources(state_dir=repo / ".state", repo=objects)
        return feeds.refresh_due_feeds(store, at_commit, now=clock(), sources=sources)
    finally:
        objects.close()


def test_due_feeds_run_and_others_wait(store: Store, clock, tmp_path: Path) -> None:
    """A feed runs first time, waits out its interval, then runs again and sees the update."""
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "windows.yaml").write_text(GOOD)
    desired = state(patch_feed("windows", "feeds/windows.yaml"))
    first = refresh(store, desired, clock, tmp_path)
    clock.advance(hours=5)
    waiting = refresh(store, desired, clock, tmp_path)
    (tmp_path / "feeds" / "windows.yaml").write_text(UPDATED)
    clock.advance(hours=1)
    second = refresh(store, desired, clock, tmp_path)
    results = [
        [(r.feed, r.result, r.outcome.new, r.outcome.updated) for r in runs if r.outcome]
        for runs in (first, waiting, second)
    ]
    assert [[("acme/windows", "ok", 1, 0)], [], [("acme/windows", "ok", 0, 1)]] == results
    assert "important" == catalogue.load_catalogue(store)["KB9000001"].severity.value


def test_changed_spec_runs_at_once(store: Store, clock, tmp_path: Path) -> None:
    """Pointing a feed at another source makes it due, whatever its interval."""
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(UPDATED)
    refresh(store, state(patch_feed("windows", "a.yaml")), clock, tmp_path)
    clock.advance(minutes=1)
    runs = refresh(store, state(patch_feed("windows", "b.yaml")), clock, tmp_path)
    assert ["ok"] == [r.result for r in runs]


def test_nothing_to_do_without_feeds(store: Store, clock, tmp_path: Path) -> None:
    """No PatchFeed: nothing runs."""
    assert [] == refresh(store, state(), clock, tmp_path)


def test_a_bad_feed_is_recorded_and_the_rest_imports(store: Store, clock, tmp_path: Path) -> None:
    """A malformed document, a missing source and a path outside the repository that the server
    does not allow (`validate` cannot know that) fail alone: status and one alert each; the good feed and the good document of the partial one import; a retry that
    still fails raises no second alert."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "ok.yaml").write_text(GOOD.replace("KB9000001", "KB9000002"))
    (tmp_path / "mixed" / "broken.yaml").write_text("- id: [unclosed\n")
    desired = state(
        patch_feed("good", "good.yaml"),
        patch_feed("mixed", "mixed"),
        patch_feed("gone", "nowhere.yaml"),
        patch_feed("escape", "/srv/outside.yaml"),
    )
    runs = refresh(store, desired, clock, tmp_path)
    clock.advance(minutes=11)  # failed feeds are retried after 10 minutes, the others wait
    retried = refresh(store, desired, clock, tmp_path)
    with store.read() as conn:
        status = status_store.get_status(conn)
        alerts = alert_store.list_alerts(conn, scope="acme")
    assert {
        "acme/good": "ok",
        "acme/mixed": "partial",
        "acme/gone": "failed",
        "acme/escape": "failed",
    } == {r.feed: r.result for r in runs}
    assert ["acme/escape", "acme/gone"] == sorted(r.feed for r in retried)
    assert "broken.yaml:line 2, column 1" in status["feed:acme/mixed"]["value"]["errors"][0]
    assert "is not allowed" in status["feed:acme/escape"]["value"]["message"]
    assert ["FeedFailed"] * 3 == [a["kind"] for a in alerts]
    assert ["KB9000001", "KB9000002"] == sorted(catalogue.load_catalogue(store))


def test_refresh_reevaluates_the_fleet_once(store: Store, clock, tmp_path: Path) -> None:
    """After the due feeds import, every stored inventory is evaluated against the new records."""
    with store.write() as conn:
        device_id = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme/retail",
                hostname="win-01",
                os_family="windows",
                os_name="Windows Server 2019",
                os_version="1809",
                role="server",
                agent_version="1.0.0",
            ),
            poll_interval=60,
            now=clock(),
        ).device_id
        inventory = reports.Inventory("10.0.17763.5000", None)
        reports.write_reports(conn, [reports.Report(device_id, inventory=inventory)], now=clock())
    (tmp_path / "windows.yaml").write_text(GOOD)
    clock.advance(minutes=5)
    (run,) = refresh(store, state(patch_feed("windows", "windows.yaml")), clock, tmp_path)
    with store.read() as conn:
        found = [e["id"] for e in devices.device_patches(conn, device_id)]
    assert (["KB9000001"], 1) == (found, run.fleet.affected if run.fleet else None)
