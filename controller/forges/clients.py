"""One HTTP client per forge: a commit status, and the one plan comment of a pull request.

Endpoints and shapes, from each forge's REST API reference:

- GitHub: `POST /repos/{o}/{r}/statuses/{sha}` `{state, context, description, target_url}`;
  comments `GET|POST /repos/{o}/{r}/issues/{n}/comments` (`per_page`, `page`), edited with
  `PATCH /repos/{o}/{r}/issues/comments/{id}` `{body}`.
- GitLab: `POST /projects/:id/statuses/:sha` `{state, name, description, target_url}`; notes
  `GET|POST /projects/:id/merge_requests/:iid/notes` (`per_page`, `page`), edited with
  `PUT /projects/:id/merge_requests/:iid/notes/:note_id` `{body}`.
- Gitea/Forgejo: GitHub's paths and bodies under `/api/v1`, paging with `limit` and `page`;
  a page holds at most the server's `[api] MAX_RESPONSE_ITEMS` (50 by default), whatever
  `limit` asks, so a list ends at an empty page or one shorter than the pages before.

Approval proposals (`controller.runtime.proposals`) open, edit and close one pull request per
proposal branch, with the policy's labels and reviewers set when it is opened:

- GitHub: `GET /repos/{o}/{r}/pulls?head={o}:{branch}&state=open`, `POST /repos/{o}/{r}/pulls`
  `{title, head, base, body}`, `PATCH /repos/{o}/{r}/pulls/{n}` `{title, body}` or
  `{state: closed}`; labels `POST /repos/{o}/{r}/issues/{n}/labels` `{labels: [name]}` (GitHub
  creates a label the repository lacks), reviewers
  `POST /repos/{o}/{r}/pulls/{n}/requested_reviewers` `{reviewers: [user name]}`.
- Gitea/Forgejo (the /api/v1 swagger): GitHub's paths; its pull list has no `head` filter, so
  the open pulls are filtered by `head.ref`. Reviewers as on GitHub (`PullReviewRequestOptions`
  `{reviewers: [string], team_reviewers}`: user names). Labels as ids (`IssueLabelsOption`
  `{labels: [int64]}`, "list of label IDs"; 1.22 takes names too, but neither version adds a
  label the repository lacks): each name is looked up in `GET /repos/{o}/{r}/labels` (paged,
  `[Label]` with `id`, `name`, `color`), the same name or else the same ignoring case (as
  GitHub matches them), and one the repository lacks is created first with
  `POST /repos/{o}/{r}/labels` `CreateLabelOption` `{name, color}` (both required; answers the
  `Label`), so that a policy's labels land on every forge alike.
- GitLab: `GET /projects/:id/merge_requests?source_branch=&state=opened`,
  `POST /projects/:id/merge_requests` `{source_branch, target_branch, title, description,
  labels, reviewer_ids}` (`labels` one comma-separated string, GitLab creates a label the
  project lacks; `reviewer_ids` an array of user ids), `PUT /projects/:id/merge_requests/:iid`
  `{title, description}` or `{state_event: close}`. Each reviewer's id is looked up with
  `GET /users?username=NAME` (a list: the one user, or empty when there is none); a name
  GitLab does not know is left out, with a warning naming it, and the merge request is opened.

Tokens: GitHub `Authorization: Bearer`, GitLab `PRIVATE-TOKEN`, Gitea `Authorization: token`.
GitHub's states are `pending|success|failure|error`, Gitea's the same (plus `warning`), GitLab's
`pending|running|success|failed|canceled`. A status description is cut to 140 characters
(GitHub refuses longer ones).

The plan comment is found again by `MARKER`, an HTML comment the forge does not display, so a
new push edits the comment in place instead of adding one. Every error is a `ForgeError` that
says whether trying again can help (`controller.core.retries`); its text names the forge host
and the HTTP status, never the token or a full URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
import structlog

from controller import __version__, errors
from controller.core import retries
from controller.forges.settings import ForgeKind, ForgeSettings

log = structlog.get_logger("patchctl.forge")

MARKER = "<!-- patchctl:plan -->"
DESCRIPTION_LIMIT = 140
PAGE_SIZE = 100
MAX_PAGES = 20  # 2,000 comments: a PR with more is not one patchctl comments on
DEFAULT_TIMEOUT = 10.0
# The colour of a label created because a policy names it (Gitea requires one, `#rrggbb`):
# GitHub's for a label it creates on first use, a neutral grey that claims no meaning.
NEW_LABEL_COLOR = "#ededed"


class StatusState(StrEnum):
    """A commit status's state, in GitHub's words (each client maps them to its forge)."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class CommitStatus:
    """One commit status: `context` is the check's name on the forge (`patchctl/plan`)."""

    state: StatusState
    context: str
    description: str
    target_url: str | None = None


class ForgeError(errors.RemoteError):
    """A forge call failed; `permanent` when trying again cannot help (401, 403, 404, 422);
    `retry_after` the wait the forge asked for."""


class Forge(Protocol):
    """What the publisher needs of a forge."""

    def set_status(self, sha: str, status: CommitStatus) -> None: ...

    def upsert_comment(self, number: int, body: str) -> str:
        """Create or edit the plan comment; returns `created`, `edited` or `unchanged`."""
        ...


class ProposalForge(Protocol):
    """What approval proposals need of a forge."""

    def upsert_pull_request(self, proposal: PullRequestProposal) -> tuple[int, str]:
        """Open the pull request of `proposal.head` or edit the open one; (number, `created`,
        `edited` or `unchanged`)."""
        ...

    def close_pull_request(self, head: str) -> int | None:
        """Close the open pull request of branch `head`; its number, or None when none is open."""
        ...


@dataclass(frozen=True, slots=True)
class PullRequestProposal:
    """A pull/merge request to open from `head` into `base`."""

    head: str
    base: str
    title: str
    body: str
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()


class _Client:
    """The HTTP part every forge shares: headers, timeouts, errors, comment upsert."""

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        clock: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.host = urlsplit(settings.url).netloc
        self._http = httpx.Client(
            base_url=settings.url,
            headers={"User-Agent": f"patchctl/{__version__}", **self.auth_headers()},
            timeout=DEFAULT_TIMEOUT,
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def set_status(self, sha: str, status: CommitStatus) -> None:
        raise NotImplementedError

    def comments_path(self, number: int) -> str:
        raise NotImplementedError

    def comment_path(self, number: int, comment_id: int) -> str:
        raise NotImplementedError

    def upsert_pull_request(self, proposal: PullRequestProposal) -> tuple[int, str]:
        raise NotImplementedError

    def close_pull_request(self, head: str) -> int | None:
        raise NotImplementedError

    def page_query(self, page: int) -> dict[str, int]:
        return {"per_page": PAGE_SIZE, "page": page}

    edit_method = "PATCH"
    # Items on a page that is not the last: PAGE_SIZE where the forge gives what is asked;
    # None where it may give fewer (its own cap), so only a page shorter than an earlier one,
    # or an empty one, ends a list.
    full_page: int | None = PAGE_SIZE

    # --- the plan comment -------------------------------------------------------------------

    def upsert_comment(self, number: int, body: str) -> str:
        text = f"{MARKER}\n{body}"
        found = self._find_comment(number)
        if found is None:
            self.request("POST", self.comments_path(number), json={"body": text})
            return "created"
        comment_id, current = found
        if current == text:
            return "unchanged"
        self.request(self.edit_method, self.comment_path(number, comment_id), json={"body": text})
        return "edited"

    def _find_comment(self, number: int) -> tuple[int, str] | None:
        """The first comment that carries the marker (its id and body), or None."""
        for comment in self._walk(self.comments_path(number)):
            body = comment.get("body")
            if isinstance(body, str) and body.startswith(MARKER):
                return comment["id"], body
        return None

    def _walk(self, path: str) -> Iterator[dict[str, Any]]:
        """Each item with an integer `id` of the paged list at `path`, once, page by page (at
        most MAX_PAGES), fetched only as far as the caller reads."""
        seen: set[int] = set()
        longest = 0
        for page in range(1, MAX_PAGES + 1):
            answer = self.request("GET", path, params=self.page_query(page))
            items = answer if isinstance(answer, list) else []
            fresh = [
                item
                for item in items
                if isinstance(item, dict)
                and isinstance(item.get("id"), int)
                and item["id"] not in seen
            ]
            for item in fresh:
                seen.add(item["id"])
                yield item
            # a forge that ignores paging repeats its one page; a short page is the last one
            if not fresh or len(items) < (self.full_page or longest):
                return
            longest = max(longest, len(items))

    # --- HTTP -------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the JSON answer, or ForgeError naming the host and the status."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ForgeError(f"{self.host}: timed out after {DEFAULT_TIMEOUT:g}s") from None
        except httpx.HTTPError as exc:
            # httpx's text may quote the URL; the exception's type says enough
            raise ForgeError(f"{self.host}: {type(exc).__name__}") from None
        if response.is_success:
            return response.json() if response.content else None
        code = response.status_code
        permanent = not retries.is_retryable(code)
        retry_after = retries.parse_retry_after(
            response.headers.get("Retry-After"), now=self.clock()
        )
        text = f"{self.host}: {method} {_shape(path)}: HTTP {code} {response.reason_phrase}"
        raise ForgeError(text, permanent=permanent, retry_after=retry_after)


def _shape(path: str) -> str:
    """A path without the query, for messages (paths name the repository, never a secret)."""
    return path.split("?", 1)[0]


def _first_open(found: Any, head: str) -> dict[str, Any] | None:
    """The first open pull request in a GitHub-shaped list whose head branch is `head`."""
    items = found if isinstance(found, list) else []
    return next(
        (
            p
            for p in items
            if isinstance(p, dict)
            and isinstance(p.get("head"), dict)
            and p["head"].get("ref") == head
            and p.get("state") == "open"
        ),
        None,
    )


def _description(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= DESCRIPTION_LIMIT else flat[: DESCRIPTION_LIMIT - 1] + "…"


class GitHub(_Client):
    """GitHub (github.com or Enterprise Server: `https://HOST/api/v3`)."""

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.settings.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    @property
    def _repo(self) -> str:
        owner, _, name = self.settings.repository.partition("/")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    def set_status(self, sha: str, status: CommitStatus) -> None:
        body: dict[str, str] = {
            "state": status.state.value,
            "context": status.context,
            "description": _description(status.description),
        }
        if status.target_url:
            body["target_url"] = status.target_url
        self.request("POST", f"{self._repo}/statuses/{sha}", json=body)

    def comments_path(self, number: int) -> str:
        return f"{self._repo}/issues/{number}/comments"

    def comment_path(self, number: int, comment_id: int) -> str:
        del number  # GitHub addresses a comment by its id alone
        return f"{self._repo}/issues/comments/{comment_id}"

    # --- approval proposals -----------------------------------------------------------------

    def _open_pull(self, head: str) -> dict[str, Any] | None:
        owner = self.settings.repository.partition("/")[0]
        found = self.request(
            "GET", f"{self._repo}/pulls", params={"head": f"{owner}:{head}", "state": "open"}
        )
        return _first_open(found, head)

    def upsert_pull_request(self, proposal: PullRequestProposal) -> tuple[int, str]:
        current = self._open_pull(proposal.head)
        if current is not None:
            number = int(current["number"])
            if (current.get("title"), current.get("body")) == (proposal.title, proposal.body):
                return number, "unchanged"
            body = {"title": proposal.title, "body": proposal.body}
            self.request("PATCH", f"{self._repo}/pulls/{number}", json=body)
            return number, "edited"
        # Looked up before the pull request exists: a label that cannot be resolved or created
        # fails the round with nothing opened, and the next pass tries again whole.
        labels = self._label_values(proposal.labels)
        created = self.request(
            "POST",
            f"{self._repo}/pulls",
            json={
                "title": proposal.title,
                "head": proposal.head,
                "base": proposal.base,
                "body": proposal.body,
            },
        )
        number = int(created["number"])
        if labels:
            self.request("POST", f"{self._repo}/issues/{number}/labels", json={"labels": labels})
        if proposal.reviewers:
            self.request(
                "POST",
                f"{self._repo}/pulls/{number}/requested_reviewers",
                json={"reviewers": list(proposal.reviewers)},
            )
        return number, "created"

    def _label_values(self, names: tuple[str, ...]) -> list[str] | list[int]:
        """What the issue-labels endpoint takes for `names`: on GitHub the names themselves."""
        return list(names)

    def close_pull_request(self, head: str) -> int | None:
        current = self._open_pull(head)
        if current is None:
            return None
        number = int(current["number"])
        self.request("PATCH", f"{self._repo}/pulls/{number}", json={"state": "closed"})
        return number


class Gitea(GitHub):
    """Gitea and Forgejo (`https://HOST/api/v1`): GitHub's shapes, its own token header and
    `limit` instead of `per_page`."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.settings.token}", "Accept": "application/json"}

    def page_query(self, page: int) -> dict[str, int]:
        return {"limit": PAGE_SIZE, "page": page}

    full_page = None  # a page holds at most the server's [api] MAX_RESPONSE_ITEMS (50 by default)

    def _open_pull(self, head: str) -> dict[str, Any] | None:
        # Gitea's list has no `head` filter; one page of open pulls is searched.
        found = self.request(
            "GET", f"{self._repo}/pulls", params={"state": "open", "limit": PAGE_SIZE}
        )
        return _first_open(found, head)

    def _label_values(self, names: tuple[str, ...]) -> list[str] | list[int]:
        """The ids of the repository's labels named `names` (the same name, else the same name
        ignoring case), in order and each once; a name the repository lacks is created as a
        label of NEW_LABEL_COLOR. ForgeError when the list or a creation fails."""
        if not names:
            return []
        exact: dict[str, int] = {}
        folded: dict[str, int] = {}
        for label in self._walk(f"{self._repo}/labels"):
            if isinstance(name := label.get("name"), str):
                exact.setdefault(name, label["id"])
                folded.setdefault(name.casefold(), label["id"])
        ids: list[int] = []
        for name in names:
            label_id = exact.get(name, folded.get(name.casefold()))
            if label_id is None:
                created = self.request(
                    "POST", f"{self._repo}/labels", json={"name": name, "color": NEW_LABEL_COLOR}
                )
                label_id = int(created["id"])
                exact[name] = folded[name.casefold()] = label_id
            ids.append(label_id)
        return list(dict.fromkeys(ids))


_GITLAB_STATES = {
    StatusState.PENDING: "pending",
    StatusState.SUCCESS: "success",
    StatusState.FAILURE: "failed",
    StatusState.ERROR: "failed",
}


class GitLab(_Client):
    """GitLab (gitlab.com or self-managed: `https://HOST/api/v4`)."""

    edit_method = "PUT"

    def auth_headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.settings.token}

    @property
    def _project(self) -> str:
        return f"/projects/{quote(self.settings.repository, safe='')}"

    def set_status(self, sha: str, status: CommitStatus) -> None:
        body: dict[str, str] = {
            "state": _GITLAB_STATES[status.state],
            "name": status.context,
            "description": _description(status.description),
        }
        if status.target_url:
            body["target_url"] = status.target_url
        self.request("POST", f"{self._project}/statuses/{sha}", json=body)

    def comments_path(self, number: int) -> str:
        return f"{self._project}/merge_requests/{number}/notes"

    def comment_path(self, number: int, comment_id: int) -> str:
        return f"{self._project}/merge_requests/{number}/notes/{comment_id}"

    # --- approval proposals -----------------------------------------------------------------

    def _open_request(self, head: str) -> dict[str, Any] | None:
        found = self.request(
            "GET",
            f"{self._project}/merge_requests",
            params={"source_branch": head, "state": "opened"},
        )
        items = found if isinstance(found, list) else []
        return next(
            (m for m in items if isinstance(m, dict) and m.get("source_branch") == head), None
        )

    def upsert_pull_request(self, proposal: PullRequestProposal) -> tuple[int, str]:
        current = self._open_request(proposal.head)
        if current is not None:
            iid = int(current["iid"])
            if (current.get("title"), current.get("description")) == (
                proposal.title,
                proposal.body,
            ):
                return iid, "unchanged"
            body = {"title": proposal.title, "description": proposal.body}
            self.request("PUT", f"{self._project}/merge_requests/{iid}", json=body)
            return iid, "edited"
        reviewer_ids, unknown = self._reviewer_ids(proposal.reviewers)
        request: dict[str, Any] = {
            "source_branch": proposal.head,
            "target_branch": proposal.base,
            "title": proposal.title,
            "description": proposal.body,
            "labels": ",".join(proposal.labels),
        }
        if reviewer_ids:
            request["reviewer_ids"] = reviewer_ids
        created = self.request("POST", f"{self._project}/merge_requests", json=request)
        iid = int(created["iid"])
        if unknown:
            log.warning(
                "reviewers unknown to the forge not requested",
                forge=self.host,
                merge_request=iid,
                reviewers=unknown,
            )
        return iid, "created"

    def _reviewer_ids(self, names: tuple[str, ...]) -> tuple[list[int], list[str]]:
        """The user ids of `names`, in order and each once, and the names GitLab does not know
        (`GET /users?username=` answers no user for them, or refuses to look them up: an
        instance may restrict its user list, and a reviewer must not keep the merge request
        from opening). ForgeError when a look-up fails in a way trying again can help."""
        ids: list[int] = []
        unknown: list[str] = []
        for name in dict.fromkeys(names):
            try:
                found = self.request("GET", "/users", params={"username": name})
            except ForgeError as exc:
                if not exc.permanent:
                    raise
                found = []
            users = found if isinstance(found, list) else []
            user_id = next(
                (u["id"] for u in users if isinstance(u, dict) and isinstance(u.get("id"), int)),
                None,
            )
            if user_id is None:
                unknown.append(name)
            else:
                ids.append(user_id)
        return list(dict.fromkeys(ids)), unknown

    def close_pull_request(self, head: str) -> int | None:
        current = self._open_request(head)
        if current is None:
            return None
        iid = int(current["iid"])
        self.request("PUT", f"{self._project}/merge_requests/{iid}", json={"state_event": "close"})
        return iid


CLIENTS: Mapping[ForgeKind, type[_Client]] = {
    ForgeKind.GITHUB: GitHub,
    ForgeKind.GITLAB: GitLab,
    ForgeKind.GITEA: Gitea,
}


def client_for(
    settings: ForgeSettings,
    *,
    clock: Callable[[], datetime],
    transport: httpx.BaseTransport | None = None,
) -> _Client:
    """The client of the configured forge (close it when done)."""
    return CLIENTS[settings.kind](settings, clock=clock, transport=transport)
