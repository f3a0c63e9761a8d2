"""Where a PatchFeed's records are read from, and what a policy may not make the controller read.

A PatchFeed is policy: whoever can merge to the repository chooses its `source`, and every read
token sees what the import says about it. So a source is one of:

- **a path inside the policy repository** (`feeds/ubuntu-osv/`, `feeds/catalogue.json`), read
  from git objects at the revision being applied, like the policy files (never the working
  tree). A symlink in the tree is followed only to a file of the same tree; `..` that leaves the
  repository and absolute paths are not repository paths.
- **an http(s) URL or an absolute local path allowed by the server configuration**, the
  `[feeds]` table of `patchctl.toml` (never the policy repository):

  ```toml
  [feeds]
  allow = ["https://security-metadata.canonical.com/osv/", "/srv/mirror/feeds/"]
  ```

  A URL is allowed when its scheme, host and port are an entry's and its path is the entry's
  path or under it (the credentials and query of the source are not compared). A local path is
  allowed when, resolved (symlinks followed, `..` applied), it is an entry or under one.

Anything else (`/proc/self/environ`, `../../etc/passwd`, `file:///…`, a URL no entry allows) is
refused with a `FeedSourceError` that names the source (redacted) and the rule; nothing is opened
or fetched, so no content can be quoted. The rules the source's text alone decides (a path
leaving the repository, a scheme other than http(s)) are `controller.kinds.feeds.source_problem`,
which `validate` applies at `spec.source` too; the allow list is applied here only.

Downloads are retried (`controller.errors.decide`): a throttled or failing server is asked again
after its `Retry-After`, when that is short (`INLINE_WAIT_LIMIT`); a longer wait ends the attempt
with `FeedSourceError.retry_after` set, and the feed is not run again before then.
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import git
import httpx
import structlog

from controller import errors
from controller.core import retries
from controller.kinds import feeds as feed_kind
from controller.redaction import redact_text, redact_url
from controller.vocabularies import http_url_problem

if TYPE_CHECKING:
    from urllib.parse import SplitResult

log = structlog.get_logger("patchctl.feeds")

MAX_DOWNLOAD = 256 * 1024 * 1024  # the importers refuse larger documents anyway
MAX_REPOSITORY_FEED = MAX_DOWNLOAD  # bytes of one feed read from the repository
DOWNLOAD_TIMEOUT = 60.0
INLINE_WAIT_LIMIT = timedelta(seconds=30)  # longer waits are not slept: the feed runs later
DOWNLOAD_RETRY = errors.RetryPolicy(
    max_attempts=3,
    first_delay=timedelta(seconds=2),
    max_delay=timedelta(seconds=30),
    max_retry_after=INLINE_WAIT_LIMIT,
)
SYMLINK_MODE = 0o120000


class FeedSourceError(errors.RemoteError):
    """The feed's source cannot or may not be read; the message says which and why (no
    credentials, no content). `permanent` (the default: a refused or missing source) when
    reading again cannot help; `retry_after`: the server asked not to be asked before then."""

    def __init__(
        self, message: str, *, permanent: bool = True, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message, permanent=permanent, retry_after=retry_after)


class FeedSettingsError(errors.ConfigurationError):
    """The `[feeds]` table cannot be used; the message names the file and the key."""


# --- the server's allow list -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """The URLs and local paths a PatchFeed may name; validated at construction."""

    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for index, entry in enumerate(self.allow):
            if feed_kind.is_url(entry):
                problem = http_url_problem(entry)
                if problem is not None:
                    raise ValueError(f"feeds.allow[{index}]: {redact_url(entry)!r} {problem}")
            elif not Path(entry).is_absolute():
                raise ValueError(
                    f"feeds.allow[{index}]: {entry!r} is neither an http(s) URL nor an "
                    "absolute path"
                )

    def allows_url(self, url: str) -> bool:
        """Whether an http(s) URL is under an allowed URL (same scheme, host and port)."""
        wanted = urlsplit(url)
        return any(
            _same_origin(wanted, allowed := urlsplit(entry))
            and _under(wanted.path or "/", allowed.path or "/")
            for entry in self.allow
            if "://" in entry
        )

    def allows_path(self, path: Path) -> bool:
        """Whether a resolved local path is an allowed path or under one."""
        return any(
            path == (root := Path(entry).resolve()) or path.is_relative_to(root)
            for entry in self.allow
            if "://" not in entry
        )


def _same_origin(a: SplitResult, b: SplitResult) -> bool:
    try:
        return (a.scheme, (a.hostname or "").lower(), a.port) == (
            b.scheme,
            (b.hostname or "").lower(),
            b.port,
        )
    except ValueError:  # a port that is not a number
        return False


def _under(path: str, root: str) -> bool:
    """`/osv/x.json` is under `/osv/` and `/osv`, not under `/os`; `..` never climbs out."""
    normal = posixpath.normpath(path)
    if ".." in PurePosixPath(path).parts:
        return False
    root = root.rstrip("/")
    return normal == root or normal.startswith(f"{root}/") or not root


def feed_settings(table: Mapping[str, Any]) -> FeedSettings:
    """Settings from the `[feeds]` table's values; ValueError names the key at fault."""
    unknown = sorted(set(table) - {"allow"})
    if unknown:
        raise ValueError(f"unknown feeds key(s) {', '.join(unknown)}; known: allow")
    allow = table.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(entry, str) for entry in allow):
        raise ValueError("feeds.allow must be a list of URLs and absolute paths")
    return FeedSettings(allow=tuple(allow))


def feeds_from_table(table: Mapping[str, Any] | None, *, source: str) -> FeedSettings:
    """Settings from a `[feeds]` table already read (`controller.config`); no table allows
    nothing outside the repository. FeedSettingsError names the file and the key."""
    if table is None:
        return FeedSettings()
    try:
        return feed_settings(table)
    except ValueError as exc:
        raise FeedSettingsError(f"{source}: [feeds]: {exc}") from None


# --- reading a source --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSources:
    """What a PatchFeed source can be read from: the policy repository (its git objects), the
    allow list, and where downloads and repository files are written while they are read."""

    state_dir: Path
    repo: git.Repo | None = None  # None: repository paths are refused (no repository)
    settings: FeedSettings = field(default_factory=FeedSettings)
    retry: errors.RetryPolicy = DOWNLOAD_RETRY
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(tz=UTC), compare=False)

    @contextmanager
    def open(self, source: str, *, revision: str | None) -> Iterator[Path]:
        """The local file or directory holding `source` while the block runs.

        `revision` (`main@sha1:<sha>`, or a bare sha) is the commit repository paths are read
        at. Raises FeedSourceError for a refused or unreadable source (see the module doc).
        """
        problem = feed_kind.source_problem(source)
        if problem is not None:
            shown = redact_url(source) if feed_kind.is_url(source) else source
            raise FeedSourceError(f"{shown!r} {problem}")
        if feed_kind.is_url(source):
            if not self.settings.allows_url(source):
                raise FeedSourceError(
                    f"{redact_url(source)!r} is not allowed: URLs must be listed in "
                    "[feeds] allow of the server configuration"
                )
            yield self._download(source)
            return
        if feed_kind.is_local_path(source):
            try:
                resolved = Path(source).expanduser().resolve()
            except RuntimeError:  # `~nobody/...`: no such user
                resolved = None
            if resolved is None or not self.settings.allows_path(resolved):
                raise FeedSourceError(
                    f"{source!r} is not allowed: a local path outside the repository "
                    "must be listed in [feeds] allow of the server configuration"
                )
            yield resolved
            return
        with self._from_repository(source, revision) as path:
            yield path

    # --- the policy repository ---------------------------------------------------------------

    @contextmanager
    def _from_repository(self, source: str, revision: str | None) -> Iterator[Path]:
        relative = feed_kind.repository_path(source)
        if relative is None:  # `open` refused it already (`source_problem`)
            raise FeedSourceError(f"{source!r} {feed_kind.LEAVES_REPOSITORY}")
        if self.repo is None or not revision:
            raise FeedSourceError(f"{source!r}: no repository revision to read it from")
        sha = revision.rpartition("sha1:")[2]
        try:
            tree = self.repo.commit(sha).tree
            item = tree if relative == "." else tree / relative
        except KeyError:
            raise FeedSourceError(
                f"{source!r}: no such file or directory in the repository at {revision}"
            ) from None
        except (ValueError, git.BadName, git.GitCommandError):
            raise FeedSourceError(f"{source!r}: revision {revision} cannot be read") from None
        work = self.state_dir / "feeds"
        work.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="repo-", dir=work))
        try:
            yield _materialize(tree, item, relative, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # --- downloads ---------------------------------------------------------------------------

    def _download(self, url: str) -> Path:
        """Fetch `url` to a file named like the URL's last path segment (the importers
        recognise files by name: `…Packages.gz`, `…updateinfo.xml`), replaced only once
        complete; throttled and failing servers are asked again (module doc)."""
        name = PurePosixPath(urlsplit(url).path).name or "feed"
        folder = self.state_dir / "feeds" / hashlib.sha256(url.encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        partial = folder / f".{name}.partial"
        attempt = 0
        while True:
            attempt += 1
            failure = self._fetch(url, partial)
            if failure is None:
                partial.replace(target)
                return target
            partial.unlink(missing_ok=True)
            problem, retryable, retry_after = failure
            if retry_after is not None and retry_after > INLINE_WAIT_LIMIT:
                # Not slept here (it would hold up every other chore): the feed waits instead.
                raise FeedSourceError(
                    f"GET {redact_url(url)}: {problem}; the server asks to retry after "
                    f"{retry_after.total_seconds():g}s",
                    permanent=False,
                    retry_after=retry_after,
                )
            error = FeedSourceError(
                f"GET {redact_url(url)}: {problem}",
                permanent=not retryable,
                retry_after=retry_after,
            )
            verdict = errors.decide(error, attempt=attempt, policy=self.retry)
            if verdict.delay is None:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise FeedSourceError(f"{error}{tries}", permanent=not retryable)
            log.info(
                "feed download retried",
                url=redact_url(url),
                problem=problem,
                seconds=verdict.delay.total_seconds(),
            )
            self.sleep(verdict.delay.total_seconds())

    def _fetch(self, url: str, into: Path) -> tuple[str, bool, timedelta | None] | None:
        """Stream `url` into a file: None when the whole body arrived, else (the problem,
        whether asking again may help, the wait the server asked for)."""

        def allowed(request: httpx.Request) -> None:
            # Every hop, redirects included: an allowed server must not lead anywhere else.
            if not self.settings.allows_url(str(request.url)):
                raise FeedSourceError(
                    f"GET {redact_url(url)} is redirected to {redact_url(str(request.url))}, "
                    "which [feeds] allow does not list"
                )

        hooks = {"request": [allowed]}
        try:
            with (
                httpx.Client(timeout=DOWNLOAD_TIMEOUT, event_hooks=hooks) as client,
                client.stream("GET", url, follow_redirects=True) as answer,
                into.open("wb") as out,
            ):
                if answer.status_code != httpx.codes.OK:
                    code = answer.status_code
                    asked = answer.headers.get("Retry-After")
                    wait = retries.parse_retry_after(asked, now=self.clock())
                    return f"HTTP {code}", retries.is_retryable(code), wait
                size = 0
                for chunk in answer.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        return f"larger than {MAX_DOWNLOAD} bytes", False, None
                    out.write(chunk)
        except httpx.HTTPError as exc:
            return redact_text(f"{type(exc).__name__}: {exc}"), True, None
        return None


def _materialize(tree: git.Tree, item: Any, relative: str, folder: Path) -> Path:
    """Write a blob, or every blob under a tree, into `folder` with its repository path."""
    budget = [MAX_REPOSITORY_FEED]
    if isinstance(item, git.Tree):
        root = folder / relative
        root.mkdir(parents=True, exist_ok=True)
        for entry in item.traverse():
            if isinstance(entry, git.Blob):
                _write_blob(tree, entry, folder, budget)
        return root
    if not isinstance(item, git.Blob):  # a submodule: another repository, not read
        raise FeedSourceError(f"{relative!r} is a submodule, not a file or directory")
    return _write_blob(tree, item, folder, budget)


def _write_blob(tree: git.Tree, blob: git.Blob, folder: Path, budget: list[int]) -> Path:
    path = str(blob.path)
    content = blob
    if blob.mode == SYMLINK_MODE:
        content = _symlink_target(tree, blob)
    if content.size > budget[0]:
        raise FeedSourceError(f"{path}: the feed is larger than {MAX_REPOSITORY_FEED} bytes")
    budget[0] -= content.size
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(content.data_stream, out)
    return target


def _symlink_target(tree: git.Tree, link: git.Blob) -> git.Blob:
    """The regular file of the same tree a symlink points to; FeedSourceError otherwise."""
    path = str(link.path)
    target = link.data_stream.read().decode("utf-8", "replace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise FeedSourceError(f"{path}: symlink points outside the repository")
    try:
        pointed = tree / resolved
    except KeyError:
        raise FeedSourceError(f"{path}: symlink target {resolved!r} does not exist") from None
    if not isinstance(pointed, git.Blob) or pointed.mode == SYMLINK_MODE:
        raise FeedSourceError(f"{path}: symlink does not point to a regular file")
    return pointed
