"""PatchFeed sources: only repository paths (read from git objects at the revision) and what the
server configuration allows; downloads honour Retry-After; no secret reaches status, alerts or
logs. Real git repositories, a real SQLite store and a real local HTTP server; the clock and the
download sleeper are fakes."""

from __future__ import annotations

import json
import os
import tomllib
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pydantic
import pytest
from feedserver import feed_server

from controller.core.desired import DesiredState, Origin
from controller.kinds.feeds import PatchFeed
from controller.runtime import feeds
from controller.runtime.feedsources import (
    FeedSettings,
    FeedSettingsError,
    FeedSources,
    feeds_from_table,
)
from controller.store import alerts as alert_store
from controller.store import catalogue
from controller.store import status as status_store
from controller.testing import json_logs
from controller.vocabularies import http_url_problem

if TYPE_CHECKING:
    from pathlib import Path

    from controller.store import Store
    from controller.testing import PolicyRepo, SettableClock

GOOD = """\
- id: KB9000001
  title: 2099-01 Cumulative Update
  os: windows
  classification: security
  severity: Critical
  builds: [{product: Windows Server 2019, build: 10.0.17763.9001}]
"""
SECRET_CONTENT = "PATCHCTL_SECRET_CONTENT=do-not-quote-me"  # noqa: S105 - a test value


def patch_feed(source: str, name: str = "windows", *, validated: bool = True) -> PatchFeed:
    """A PatchFeed of tenant acme; `validated=False` skips the model's checks of `source`, as a
    feed that reached the service some other way than `validate` would."""
    body = {
        "apiVersion": "patchctl/v1",
        "kind": "PatchFeed",
        "metadata": {"name": name, "tenant": "acme"},
        "spec": {"format": "native", "source": "feeds/x", "refresh": "6h"},
    }
    feed = PatchFeed.model_validate(body)
    if validated:
        return PatchFeed.model_validate({**body, "spec": {**body["spec"], "source": source}})
    spec = feed.spec.model_copy(update={"source": source})  # model_copy does not validate
    return feed.model_copy(update={"spec": spec})


class Sleeps(list[float]):
    """A fake sleeper: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def refresh(
    store: Store,
    repo: PolicyRepo,
    clock: SettableClock,
    *feed_objects: PatchFeed,
    allow: tuple[str, ...] = (),
    sleeps: Sleeps | None = None,
) -> list[feeds.FeedRefresh]:
    """Refresh the feeds at the repository's current commit."""
    revision = f"main@sha1:{repo.repo.head.commit.hexsha}"
    sources = FeedSources(
        state_dir=repo.path.parent / "state",
        repo=repo.repo,
        settings=FeedSettings(allow=allow),
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=clock,
    )
    origins = {feed.key: Origin(f"policies/feeds/{feed.name}.yaml", 3) for feed in feed_objects}
    desired = DesiredState(revision=revision, objects=feed_objects, origins=origins)
    return feeds.refresh_due_feeds(store, desired, now=clock(), sources=sources)


def stored(store: Store) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with store.read() as conn:
        return status_store.get_status(conn), alert_store.list_alerts(conn, scope="acme")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.env"
    path.parent.mkdir()
    path.write_text(SECRET_CONTENT)
    return path


# What the text alone decides: `validate` refuses these too (the next test), so here they reach
# the service unvalidated, as a feed that came some other way would.
REFUSED_BY_VALIDATE = {"../outside/secret.env", "feeds/../../outside/secret.env", "file://{secret}"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/proc/self/environ", "is not allowed: a local path outside the repository"),
        ("{secret}", "is not allowed: a local path outside the repository"),
        ("~/.ssh/id_rsa", "is not allowed: a local path outside the repository"),
        ("~nosuchuser-patchctl/x", "is not allowed: a local path outside the repository"),
        ("../outside/secret.env", "leaves the repository"),
        ("feeds/../../outside/secret.env", "leaves the repository"),
        ("file://{secret}", "only http(s) URLs are fetched"),
        ("http://169.254.169.254/latest/meta-data/", "is not allowed: URLs must be listed"),
        ("feeds/absolute-link.yaml", "symlink points outside the repository"),
        ("feeds/climbing-link.yaml", "symlink points outside the repository"),
        ("feeds/linked", "symlink points outside the repository"),
    ],
    ids=[
        "proc-environ",
        "absolute-path",
        "home",
        "unknown-home",
        "dot-dot",
        "dot-dot-inside",
        "file-url",
        "metadata-url",
        "absolute-symlink",
        "climbing-symlink",
        "symlink-in-directory",
    ],
)
def test_a_source_outside_the_repository_is_refused_unread(
    sqlite_store: Store,
    clock: SettableClock,
    policy_repo: PolicyRepo,
    secret_file: Path,
    source: str,
    expected: str,
) -> None:
    """A source the policy may not name fails at its file, line and field with the rule, opens
    nothing, quotes nothing."""
    feeds_dir = policy_repo.path / "feeds"
    (feeds_dir / "linked").mkdir(parents=True)
    os.symlink(secret_file, feeds_dir / "absolute-link.yaml")
    os.symlink("../../outside/secret.env", feeds_dir / "climbing-link.yaml")
    os.symlink("../../../outside/secret.env", feeds_dir / "linked" / "leak.yaml")
    policy_repo.commit("feeds with symlinks")
    text = source.format(secret=secret_file)
    feed = patch_feed(text, validated=source not in REFUSED_BY_VALIDATE)
    (run,) = refresh(sqlite_store, policy_repo, clock, feed)
    status, alerts = stored(sqlite_store)
    assert ("failed", True) == (run.result, expected in run.message)
    assert run.message.startswith("policies/feeds/windows.yaml:3: spec.source: ")
    assert ["FeedFailed"] == [alert["kind"] for alert in alerts]
    assert "do-not-quote-me" not in json.dumps([status, alerts], default=str)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("../outside/secret.env", "leaves the repository"),
        ("feeds/../../outside/secret.env", "leaves the repository"),
        ("..\\outside\\secret.env", "leaves the repository"),
        ("file:///etc/shadow", "only http(s) URLs are fetched, not file://"),
        ("ftp://mirror.example/osv/", "only http(s) URLs are fetched, not ftp://"),
        ("https:///osv/all.zip", "an http(s) URL needs a host"),
        ("http://[::1/osv/", "is not a valid URL"),
    ],
    ids=["dot-dot", "dot-dot-inside", "backslashes", "file-url", "ftp-url", "no-host", "bad-url"],
)
def test_validate_refuses_what_the_text_decides_in_the_services_words(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo, source: str, expected: str
) -> None:
    """A source the server's allow list cannot make readable fails `validate` at spec.source
    with the words the service uses when such a feed reaches it (one rule for both)."""
    with pytest.raises(pydantic.ValidationError) as raised:
        patch_feed(source)
    (error,) = raised.value.errors()
    (run,) = refresh(sqlite_store, policy_repo, clock, patch_feed(source, validated=False))
    said = error["msg"].removeprefix("Value error, ")
    assert (("spec", "source"), True, True) == (
        tuple(error["loc"]),
        expected in said,
        run.message == f"policies/feeds/windows.yaml:3: spec.source: {said}",
    )


@pytest.mark.parametrize(
    "source",
    [
        "feeds/osv/",
        "./feeds/../feeds/osv.json",
        ".",
        "/srv/mirror/osv/",
        "~/osv/",
        "https://x.example/o",
    ],
)
def test_validate_leaves_the_allow_list_to_the_service(source: str) -> None:
    """Repository paths that stay inside, and absolute paths and http(s) URLs (which only the
    server's `[feeds] allow` can judge) pass `validate`."""
    assert source == patch_feed(source).spec.source


def fetchable_by_urllib(url: str) -> bool:
    """Whether `urllib.parse`, which the service reads URLs with, sees an http(s) URL with a
    host and a valid port."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


@pytest.mark.parametrize(
    "url",
    [
        "http://h/x",
        "HTTPS://H/x",
        "http://u:p@h:8080/x?t=1#f",
        "http://[::1]:80/x",
        "http://h:/x",
        "http://h?x",
        "https:///x",
        "http://u@/x",
        "http://[::1",
        "http://h]/x",
        "http://h:xx/",
        "http://h:99999/",
        "http://a:b:c/",
        "http://h:\u0663/",
        "ftp://h/x",
        "feeds/x://y",
        "://x",
    ],
)
def test_the_pure_url_rule_reads_urls_as_urllib_does(url: str) -> None:
    """`vocabularies.http_url_problem` (no URL library in the pure kinds) accepts exactly the
    URLs `urllib.parse` reads as http(s) with a host, so the allow list (and `--server`) never
    meets a URL it cannot parse."""
    assert fetchable_by_urllib(url) == (http_url_problem(url) is None)


def test_repository_sources_are_read_at_the_revision_not_the_working_tree(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo
) -> None:
    """Uncommitted edits and untracked files are not feed content; the commit is."""
    policy_repo.write("feeds/windows.yaml", GOOD)
    policy_repo.commit("a feed")
    policy_repo.write("feeds/windows.yaml", GOOD.replace("Critical", "Low"))
    policy_repo.write("feeds/untracked.yaml", GOOD)
    runs = refresh(
        sqlite_store,
        policy_repo,
        clock,
        patch_feed("feeds/windows.yaml"),
        patch_feed("feeds/untracked.yaml", name="untracked"),
    )
    assert [("acme/windows", "ok"), ("acme/untracked", "failed")] == [
        (run.feed, run.result) for run in runs
    ]
    assert "no such file or directory in the repository at main@sha1:" in runs[1].message
    assert "critical" == catalogue.load_catalogue(sqlite_store)["KB9000001"].severity.value


def test_a_directory_source_with_an_inner_symlink_reads_the_linked_file(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo
) -> None:
    """A symlink to a file of the same tree is followed; errors name repository paths."""
    policy_repo.write("shared/windows.yaml", GOOD)
    policy_repo.write("feeds/broken.yaml", "- id: [unclosed\n")
    (policy_repo.path / "feeds").mkdir(exist_ok=True)
    os.symlink("../shared/windows.yaml", policy_repo.path / "feeds" / "windows.yaml")
    policy_repo.commit("a feed directory")
    (run,) = refresh(sqlite_store, policy_repo, clock, patch_feed("feeds/"))
    status, _ = stored(sqlite_store)
    assert ("partial", ["KB9000001"]) == (
        run.result,
        sorted(catalogue.load_catalogue(sqlite_store)),
    )
    assert status["feed:acme/windows"]["value"]["errors"][0].startswith("feeds/broken.yaml:")


def test_allowed_local_paths_and_urls_are_read(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """The allow list opens a local folder and a URL prefix, and nothing beside them."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "windows.yaml").write_text(GOOD)
    (mirror / "escape.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    (tmp_path / "elsewhere.yaml").write_text(GOOD)
    files = {"/osv/windows.yaml": GOOD.encode(), "/other/windows.yaml": GOOD.encode()}
    with feed_server(files) as server:
        runs = refresh(
            sqlite_store,
            policy_repo,
            clock,
            patch_feed(str(mirror / "windows.yaml"), name="path"),
            patch_feed(str(mirror / "escape.yaml"), name="path-escape"),
            patch_feed(f"{server.base}/osv/windows.yaml", name="url"),
            patch_feed(f"{server.base}/other/windows.yaml", name="url-other"),
            patch_feed(f"{server.base}/osv/../other/windows.yaml", name="url-climb"),
            allow=(str(mirror), f"{server.base}/osv/"),
        )
    assert [
        ("acme/path", "ok"),
        ("acme/path-escape", "failed"),
        ("acme/url", "ok"),
        ("acme/url-other", "failed"),
        ("acme/url-climb", "failed"),
    ] == [(run.feed, run.result) for run in runs]
    assert ["/osv/windows.yaml"] == server.requests


@pytest.mark.parametrize(
    ("location", "expected"),
    [("/osv/moved.yaml", "ok"), ("/other/windows.yaml", "failed")],
    ids=["within-the-allowed-prefix", "outside-it"],
)
def test_a_redirect_must_stay_within_the_allow_list(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo, location: str, expected: str
) -> None:
    """An allowed server cannot redirect a download to a URL nobody allowed."""
    files = {"/osv/moved.yaml": GOOD.encode(), "/other/windows.yaml": GOOD.encode()}
    with feed_server(files, script=[(302, {"Location": location})]) as server:
        (run,) = refresh(
            sqlite_store,
            policy_repo,
            clock,
            patch_feed(f"{server.base}/osv/windows.yaml"),
            allow=(f"{server.base}/osv/",),
        )
    requested = ["/osv/windows.yaml", location] if expected == "ok" else ["/osv/windows.yaml"]
    assert (expected, requested) == (run.result, server.requests)
    assert expected == "ok" or "which [feeds] allow does not list" in run.message


@pytest.mark.parametrize(
    ("entry", "url", "expected"),
    [
        ("https://feeds.example/osv/", "https://feeds.example/osv/all.zip", True),
        ("https://feeds.example/osv", "https://feeds.example/osv/a/b.json", True),
        ("https://feeds.example/osv", "https://feeds.example/osvx/a.json", False),
        ("https://feeds.example/osv/", "http://feeds.example/osv/a.json", False),
        ("https://feeds.example/osv/", "https://feeds.example:8443/osv/a.json", False),
        ("https://feeds.example/osv/", "https://FEEDS.example/osv/a.json", True),
        ("https://feeds.example/osv/", "https://u:p@feeds.example/osv/a.json?token=x", True),
        ("https://feeds.example/osv/", "https://feeds.example/osv/../admin", False),
        ("https://feeds.example/osv/", "https://feeds.example.evil/osv/a.json", False),
        ("https://feeds.example/", "https://feeds.example/anything", True),
    ],
    ids=[
        "under-folder",
        "under-path",
        "sibling-prefix",
        "other-scheme",
        "other-port",
        "host-case",
        "credentials-ignored",
        "dot-dot",
        "other-host",
        "whole-host",
    ],
)
def test_the_allow_list_matches_origin_and_path(entry: str, url: str, expected: bool) -> None:
    """Scheme, host and port must be an entry's, and the path under the entry's path."""
    assert expected == FeedSettings(allow=(entry,)).allows_url(url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[feeds]\nallow = ["relative/dir"]\n', "feeds.allow[0]: 'relative/dir' is neither"),
        (
            '[feeds]\nallow = ["ftp://mirror/x/"]\n',
            "feeds.allow[0]: 'ftp://mirror/x/' is refused: only http(s) URLs are fetched",
        ),
        ('[feeds]\nallow = "https://x/"\n', "feeds.allow must be a list"),
        ("[feeds]\ndeny = []\n", "unknown feeds key(s) deny"),
    ],
    ids=["relative-path", "ftp", "not-a-list", "unknown-key"],
)
def test_a_bad_feeds_table_names_the_file_and_key(text: str, expected: str) -> None:
    """`[feeds]` mistakes stop the service with the file and the key at fault."""
    with pytest.raises(FeedSettingsError) as raised:
        feeds_from_table(tomllib.loads(text)["feeds"], source="/etc/patchctl.toml")
    assert str(raised.value).startswith("/etc/patchctl.toml: [feeds]: ")
    assert expected in str(raised.value)


def test_a_good_feeds_table_is_read() -> None:
    """URLs and absolute paths are accepted as they are written; no table allows nothing."""
    table = {"allow": ["https://feeds.example/osv/", "/srv/feeds"]}
    expected = FeedSettings(allow=("https://feeds.example/osv/", "/srv/feeds"))
    assert (expected, FeedSettings()) == (
        feeds_from_table(table, source="patchctl.toml"),
        feeds_from_table(None, source="patchctl.toml"),
    )


# --- downloads: Retry-After ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "result", "waits"),
    [
        ([(429, {"Retry-After": "20"})], "ok", [20.0]),
        ([(503, {"Retry-After": "Fri, 20 Nov 2026 09:00:10 GMT"})], "ok", [10.0]),
        ([(503, {}), (502, {})], "ok", [2.0, 4.0]),
        ([(503, {})] * 3, "failed", [2.0, 4.0]),
        ([(404, {"Retry-After": "5"})], "failed", []),
    ],
    ids=["429-seconds", "503-http-date", "backoff", "attempts-exhausted", "404-not-retried"],
)
def test_downloads_wait_as_long_as_the_server_asks(
    sqlite_store: Store,
    clock: SettableClock,
    policy_repo: PolicyRepo,
    script: list[tuple[int, dict[str, str]]],
    result: str,
    waits: list[float],
) -> None:
    """A throttled or failing feed server is asked again after its Retry-After (or backoff)."""
    sleeps = Sleeps()
    with feed_server({"/osv/windows.yaml": GOOD.encode()}, script=script) as server:
        (run,) = refresh(
            sqlite_store,
            policy_repo,
            clock,
            patch_feed(f"{server.base}/osv/windows.yaml"),
            allow=(f"{server.base}/osv/",),
            sleeps=sleeps,
        )
    assert (result, waits) == (run.result, list(sleeps))


def test_a_long_retry_after_is_not_slept_but_holds_the_feed_back(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo
) -> None:
    """Retry-After: 3600 fails the run at once; the feed is not asked again for an hour."""
    sleeps = Sleeps()
    script = [(429, {"Retry-After": "3600"})]
    with feed_server({"/osv/windows.yaml": GOOD.encode()}, script=script) as server:
        feed = patch_feed(f"{server.base}/osv/windows.yaml")
        allow = (f"{server.base}/osv/",)
        first = refresh(sqlite_store, policy_repo, clock, feed, allow=allow, sleeps=sleeps)
        clock.advance(minutes=30)  # past the usual 10-minute retry of a failed feed
        held = refresh(sqlite_store, policy_repo, clock, feed, allow=allow, sleeps=sleeps)
        clock.advance(minutes=31)
        later = refresh(sqlite_store, policy_repo, clock, feed, allow=allow, sleeps=sleeps)
    assert [["failed"], [], ["ok"]] == [[r.result for r in runs] for runs in (first, held, later)]
    assert ([], 2) == (list(sleeps), len(server.requests))
    assert "the server asks to retry after 3600s" in first[0].message


# --- secrets -----------------------------------------------------------------------------------


def test_feed_credentials_reach_no_status_alert_or_log_line(
    sqlite_store: Store,
    clock: SettableClock,
    policy_repo: PolicyRepo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A feed URL's password and token are masked in status, alerts and every library's logs."""
    files = {"/osv/windows.yaml": GOOD.encode()}
    with feed_server(files, script=[(503, {})] * 3) as server, json_logs(capsys) as lines:
        port = server.base.rsplit(":", 1)[1]
        source = f"http://reader:pw-S3cret@127.0.0.1:{port}/osv/windows.yaml?token=tok-S3cret"
        (run,) = refresh(
            sqlite_store,
            policy_repo,
            clock,
            patch_feed(source),
            allow=(f"{server.base}/osv/",),
        )
    status, alerts = stored(sqlite_store)
    everything = json.dumps([status, alerts, run.message, lines], default=str)
    requests = [line["event"] for line in lines if line.get("logger") == "httpx"]
    assert (False, False) == ("pw-S3cret" in everything, "tok-S3cret" in everything)
    assert (
        f"http://***@127.0.0.1:{port}/osv/windows.yaml?token=***"
        == (status["feed:acme/windows"]["value"]["source"])
    )
    assert 3 == len(requests)
    assert all(f"GET http://***@127.0.0.1:{port}/osv/windows.yaml?token=***" in r for r in requests)


def test_a_very_long_retry_after_is_capped(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo
) -> None:
    """A server asking for a week holds the feed back one day at most."""
    with feed_server({}, script=[(429, {"Retry-After": str(7 * 86400)})]) as server:
        refresh(
            sqlite_store,
            policy_repo,
            clock,
            patch_feed(f"{server.base}/osv/windows.yaml"),
            allow=(f"{server.base}/osv/",),
        )
    status, _ = stored(sqlite_store)
    expected = (clock() + timedelta(days=1)).isoformat()
    assert expected == status["feed:acme/windows"]["value"]["retryAt"]


def test_a_feed_status_counts_failed_records_once(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo
) -> None:
    """A record with two errors is one failed record in the status; both errors are kept."""
    policy_repo.write("feeds/windows.yaml", GOOD + "- {id: KB2, severity: nuclear, rating: 11}\n")
    policy_repo.commit("a feed with one bad record")
    (run,) = refresh(sqlite_store, policy_repo, clock, patch_feed("feeds/windows.yaml"))
    status, _ = stored(sqlite_store)
    value = status["feed:acme/windows"]["value"]
    assert ("partial", 1, 1, 2) == (
        run.result,
        value["counts"]["new"],
        value["counts"]["failed"],
        len(value["errors"]),
    )


def test_a_directory_source_without_documents_fails_naming_it(
    sqlite_store: Store, clock: SettableClock, policy_repo: PolicyRepo
) -> None:
    """A feed directory that holds none of the format's files is a failed run, not '0 new'."""
    policy_repo.write("feeds/README.md", "the mirror goes here\n")
    policy_repo.commit("an empty mirror")
    (run,) = refresh(sqlite_store, policy_repo, clock, patch_feed("feeds/"))
    assert ("failed", True) == (
        run.result,
        "feeds/: no native document in this directory" in run.message,
    )
