"""Local fakes of the forges' REST APIs (the far side of the network), for the forge tests.

A real HTTP server on a loopback port that implements the endpoints patchctl calls, with the
request and answer shapes of each forge's public API reference:

- GitHub (docs.github.com/rest): `POST /repos/{o}/{r}/statuses/{sha}` `{state, context,
  description, target_url}` → 201; `GET|POST /repos/{o}/{r}/issues/{n}/comments` (paged by
  `per_page`/`page`) → 200 list / 201 comment; `PATCH /repos/{o}/{r}/issues/comments/{id}`
  `{body}` → 200. States `error|failure|pending|success`; a description over 140 characters
  is refused with 422. `Authorization: Bearer <token>`.
- GitLab (docs.gitlab.com/api): `POST /api/v4/projects/:id/statuses/:sha` `{state, name,
  description, target_url}` → 201; `GET|POST /api/v4/projects/:id/merge_requests/:iid/notes`
  → 200 list / 201 note; `PUT .../notes/:note_id` `{body}` → 200. States
  `pending|running|success|failed|canceled`. `PRIVATE-TOKEN: <token>`; `:id` is the project
  number or its URL-encoded path.
- Gitea/Forgejo (the /api/v1 swagger): GitHub's paths under `/api/v1`, paged by `limit`/`page`,
  `Authorization: token <token>`, states `pending|success|error|failure|warning`.

A page holds at most what the forge allows whatever is asked: 100 on GitHub (`per_page`) and
GitLab, 50 on Gitea (its `[api] MAX_RESPONSE_ITEMS` default).

Approval proposals: GitHub/Gitea `GET /repos/{o}/{r}/pulls` (`state`; GitHub also `head=o:branch`),
`POST .../pulls` `{title, head, base, body}` → 201, `PATCH .../pulls/{n}` `{title, body, state}`
→ 200, `POST .../pulls/{n}/requested_reviewers` `{reviewers}` (user names) → 201 and
`POST .../issues/{n}/labels` `{labels}` → 200: label names on GitHub (a label the repository
lacks is made), label ids on Gitea (`IssueLabelsOption`; anything else, or an id of no label of
the repository, is refused with 422). Gitea's repository labels: `GET /repos/{o}/{r}/labels`
(paged) → 200 `[Label]` `{id, name, color, description, exclusive, is_archived, url}` and
`POST` `CreateLabelOption` `{name, color}` (both required, colour `#rrggbb` or `rrggbb`, else
422) → 201 `Label`; GitLab `GET /projects/:id/merge_requests` (`source_branch`, `state=opened`),
`POST .../merge_requests` `{source_branch, target_branch, title, description, labels,
reviewer_ids}` → 201 (`labels` a comma-separated string; `reviewer_ids` an array of user ids,
else 400, the merge request's `reviewers` being the users among them) and
`PUT .../merge_requests/:iid` `{title, description, state_event}` → 200; GitLab's users
`GET /api/v4/users?username=NAME` → 200 `[user]` `{id, username, name, state}` (the one user of
that name, case ignored; empty when there is none). A second open request
from the same branch is refused with 422 (GitHub "A pull request already exists", GitLab 409).

Every request is recorded; `fail_next` answers the next requests with 503 and `Retry-After: 0`;
`gate` (when cleared) holds every answer until it is set, to prove callers do not wait.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PAGE_CAPS = {"github": 100, "gitlab": 100, "gitea": 50}
STATES = {
    "github": {"error", "failure", "pending", "success"},
    "gitea": {"error", "failure", "pending", "success", "warning"},
    "gitlab": {"pending", "running", "success", "failed", "canceled"},
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    answered: int = 0


@dataclass
class FakeForge:
    """One forge's fake: comments per PR number, statuses per commit, every request seen."""

    kind: str
    token: str
    repository: str = "acme/policies"
    project_id: int = 42  # GitLab's number for `repository`
    requests: list[Request] = field(default_factory=list)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)  # number/iid → request
    labels: list[dict[str, Any]] = field(default_factory=list)  # Gitea's repository labels
    users: dict[str, int] = field(default_factory=dict)  # GitLab's users: user name → id
    users_forbidden: bool = False  # GitLab's user list refused (403), as a locked-down instance
    fail_next: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.gate.set()

    # --- what tests read --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API root patchctl is configured with."""
        assert self._server is not None
        root = f"http://127.0.0.1:{self._server.server_address[1]}"
        return {"github": root, "gitlab": f"{root}/api/v4", "gitea": f"{root}/api/v1"}[self.kind]

    def calls(self, method: str, pattern: str) -> list[Request]:
        """The answered requests with `method` whose path matches `pattern` (a regex)."""
        return [
            r
            for r in self.requests
            if r.method == method and re.search(pattern, r.path) and r.answered
        ]

    def add_comment(self, number: int, body: str, *, author: str = "bob") -> None:
        """A comment someone else wrote, before patchctl comes."""
        with self._lock:
            self.comments.setdefault(number, []).append(self._comment(body, author))

    def add_label(self, name: str, *, color: str = "#e11d21") -> int:
        """A label the repository has before patchctl comes (Gitea); its id."""
        with self._lock:
            return int(self._label(name, color)["id"])

    # --- the server -------------------------------------------------------------------------

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(
            method,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in handler.headers.items()},
            json.loads(raw) if raw else None,
        )
        with self._lock:
            self.requests.append(request)
        self.gate.wait(30)
        with self._lock:
            status, answer, headers = self._route(request)
            request.answered = status
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    # --- the API ----------------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, {"message": "Service Unavailable"}, {"Retry-After": "0"}
        if not self._authorised(request.headers):
            return 401, {"message": "Bad credentials"}, {}
        if self.kind == "gitlab":
            return self._gitlab(request)
        return self._github(request)

    def _authorised(self, headers: dict[str, str]) -> bool:
        expected = {
            "github": ("authorization", f"Bearer {self.token}"),
            "gitea": ("authorization", f"token {self.token}"),
            "gitlab": ("private-token", self.token),
        }[self.kind]
        return headers.get(expected[0]) == expected[1]

    def _github(self, request: Request) -> tuple[int, Any, dict[str, str]]:  # noqa: PLR0911 - one answer per route
        prefix = "/api/v1" if self.kind == "gitea" else ""
        repo = f"{prefix}/repos/{self.repository}"
        path = request.path
        if m := re.fullmatch(rf"{repo}/statuses/([0-9a-f]{{40}})", path):
            return self._status(request, m[1], name_field="context")
        if m := re.fullmatch(rf"{repo}/issues/([0-9]+)/comments", path):
            number = int(m[1])
            if request.method == "GET":
                size_key = "limit" if self.kind == "gitea" else "per_page"
                return 200, self._page(self.comments.get(number, []), request.query, size_key), {}
            if request.method == "POST":
                return self._create(number, request.body)
        if path == f"{repo}/labels" and self.kind == "gitea":
            return self._repository_labels(request)
        if path == f"{repo}/pulls" or re.fullmatch(rf"{repo}/(pulls|issues)/[0-9]+/\w+", path):
            return self._pull_github(request, repo)
        if m := re.fullmatch(rf"{repo}/pulls/([0-9]+)", path):
            return self._pull_github(request, repo, int(m[1]))
        if (m := re.fullmatch(rf"{repo}/issues/comments/([0-9]+)", path)) and (
            request.method == "PATCH"
        ):
            return self._edit(None, int(m[1]), request.body)
        return 404, {"message": "Not Found"}, {}

    def _gitlab(self, request: Request) -> tuple[int, Any, dict[str, str]]:  # noqa: PLR0911 - one answer per route
        if request.path == "/api/v4/users" and request.method == "GET":
            if self.users_forbidden:
                return 403, {"message": "403 Forbidden"}, {}
            return 200, self._gitlab_users(request.query.get("username", [None])[0]), {}
        match = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)", request.path)
        project = unquote(match[1]) if match else None
        if match is None or project not in {self.repository, str(self.project_id)}:
            return 404, {"message": "404 Project Not Found"}, {}
        rest = match[2]
        if m := re.fullmatch(r"/statuses/([0-9a-f]{40})", rest):
            return self._status(request, m[1], name_field="name")
        if rest == "/merge_requests" or re.fullmatch(r"/merge_requests/[0-9]+", rest):
            return self._merge_request(request, rest)
        if m := re.fullmatch(r"/merge_requests/([0-9]+)/notes", rest):
            number = int(m[1])
            if request.method == "GET":
                return 200, self._page(self.comments.get(number, []), request.query, "per_page"), {}
            if request.method == "POST":
                return self._create(number, request.body)
        if (m := re.fullmatch(r"/merge_requests/([0-9]+)/notes/([0-9]+)", rest)) and (
            request.method == "PUT"
        ):
            return self._edit(int(m[1]), int(m[2]), request.body)
        return 404, {"message": "404 Not Found"}, {}

    def _pull_github(  # noqa: C901, PLR0911 - the pulls API's routes, one answer each
        self, request: Request, repo: str, number: int | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        body = request.body or {}
        if m := re.fullmatch(rf"{repo}/(pulls|issues)/([0-9]+)/(\w+)", request.path):
            pull = self.pulls.get(int(m[2]))
            if pull is None or request.method != "POST":
                return 404, {"message": "Not Found"}, {}
            return self._pull_part(pull, m[3], body)
        if number is not None:
            pull = self.pulls.get(number)
            if pull is None or request.method != "PATCH":
                return 404, {"message": "Not Found"}, {}
            for key in ("title", "body", "state"):
                if key in body:
                    pull[key] = body[key]
            return 200, pull, {}
        if request.method == "GET":
            state = request.query.get("state", ["open"])[0]
            head = request.query.get("head", [None])[0] if self.kind == "github" else None
            return (
                200,
                [
                    p
                    for p in self.pulls.values()
                    if p["state"] == state
                    and (
                        head is None
                        or head == f"{self.repository.split('/')[0]}:{p['head']['ref']}"
                    )
                ],
                {},
            )
        if request.method == "POST":
            if not all(isinstance(body.get(k), str) for k in ("title", "head", "base")):
                return 422, {"message": "Validation Failed"}, {}
            if any(
                p["head"]["ref"] == body["head"] and p["state"] == "open"
                for p in self.pulls.values()
            ):
                return 422, {"message": "A pull request already exists"}, {}
            number = len(self.pulls) + 1
            self.pulls[number] = {
                "number": number,
                "state": "open",
                "title": body["title"],
                "body": body.get("body"),
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
                "labels": [],
            }
            return 201, self.pulls[number], {}
        return 404, {"message": "Not Found"}, {}

    def _pull_part(
        self, pull: dict[str, Any], part: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        """`POST .../issues/{n}/labels` and `POST .../pulls/{n}/requested_reviewers`."""
        if part == "labels" and self.kind == "github":
            pull["labels"] = [{"name": n} for n in body.get("labels", [])]
            return 200, pull["labels"], {}
        if part == "labels":
            return self._add_labels(pull, body.get("labels"))
        if part == "requested_reviewers":
            pull["requested_reviewers"] = [{"login": n} for n in body.get("reviewers", [])]
            return 201, pull, {}
        return 404, {"message": "Not Found"}, {}

    def _merge_request(self, request: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        body = request.body or {}
        if m := re.fullmatch(r"/merge_requests/([0-9]+)", rest):
            mr = self.pulls.get(int(m[1]))
            if mr is None or request.method != "PUT":
                return 404, {"message": "404 Not found"}, {}
            for key in ("title", "description"):
                if key in body:
                    mr[key] = body[key]
            if body.get("state_event") == "close":
                mr["state"] = "closed"
            return 200, mr, {}
        if request.method == "GET":
            state = request.query.get("state", ["all"])[0]
            branch = request.query.get("source_branch", [None])[0]
            return (
                200,
                [
                    m
                    for m in self.pulls.values()
                    if state in {"all", m["state"]} and branch in {None, m["source_branch"]}
                ],
                {},
            )
        if request.method == "POST":
            return self._open_merge_request(body)
        return 404, {"message": "404 Not found"}, {}

    def _open_merge_request(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """`POST /projects/:id/merge_requests`."""
        keys = ("source_branch", "target_branch", "title")
        if not all(isinstance(body.get(k), str) for k in keys):
            return 400, {"message": "400 Bad request"}, {}
        if any(
            m["source_branch"] == body["source_branch"] and m["state"] == "opened"
            for m in self.pulls.values()
        ):
            return 409, {"message": ["Another open merge request already exists"]}, {}
        reviewer_ids = body.get("reviewer_ids", [])
        if not isinstance(reviewer_ids, list) or not all(type(i) is int for i in reviewer_ids):
            return 400, {"error": "reviewer_ids is invalid"}, {}
        iid = len(self.pulls) + 1
        labels = [n for n in (body.get("labels") or "").split(",") if n]
        self.pulls[iid] = {
            "iid": iid,
            "state": "opened",
            "title": body["title"],
            "description": body.get("description"),
            "source_branch": body["source_branch"],
            "target_branch": body["target_branch"],
            "labels": labels,
            "reviewers": [u for u in self._gitlab_users(None) if u["id"] in reviewer_ids],
        }
        return 201, self.pulls[iid], {}

    def _gitlab_users(self, username: str | None) -> list[dict[str, Any]]:
        return [
            {"id": user_id, "username": name, "name": name.title(), "state": "active"}
            for name, user_id in self.users.items()
            if username is None or name.casefold() == username.casefold()
        ]

    def _status(
        self, request: Request, sha: str, *, name_field: str
    ) -> tuple[int, Any, dict[str, str]]:
        body = request.body or {}
        if request.method != "POST" or body.get("state") not in STATES[self.kind]:
            return 422, {"message": "Validation Failed", "errors": [{"field": "state"}]}, {}
        if self.kind == "github" and len(body.get("description") or "") > 140:
            return 422, {"message": "Validation Failed", "errors": [{"field": "description"}]}, {}
        status = {
            "id": self._new_id(),
            "sha": sha,
            "state": body["state"],
            "context": body.get(name_field),
            "description": body.get("description"),
            "target_url": body.get("target_url"),
        }
        self.statuses.append(status)
        return 201, status, {}

    def _page(
        self, every: list[dict[str, Any]], query: dict[str, list[str]], size_key: str
    ) -> list[dict[str, Any]]:
        size = min(int(query.get(size_key, ["30"])[0]), PAGE_CAPS[self.kind])
        page = int(query.get("page", ["1"])[0])
        return every[(page - 1) * size : page * size]

    def _repository_labels(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if request.method == "GET":
            return 200, self._page(self.labels, request.query, "limit"), {}
        body = request.body if isinstance(request.body, dict) else {}
        name, color = body.get("name"), body.get("color")
        if request.method != "POST":
            return 404, {"message": "Not Found"}, {}
        if not (isinstance(name, str) and name.strip()) or not (
            isinstance(color, str) and re.fullmatch(r"#?[0-9a-fA-F]{6}", color)
        ):
            return 422, {"message": "[Name]: Required; [Color]: Required"}, {}
        return 201, self._label(name, color), {}

    def _label(self, name: str, color: str) -> dict[str, Any]:
        label_id = self._new_id()
        label = {
            "id": label_id,
            "name": name,
            "color": color.lstrip("#"),
            "description": "",
            "exclusive": False,
            "is_archived": False,
            "url": f"/api/v1/repos/{self.repository}/labels/{label_id}",
        }
        self.labels.append(label)
        return label

    def _add_labels(self, pull: dict[str, Any], wanted: Any) -> tuple[int, Any, dict[str, str]]:
        """Gitea's issue labels: ids of the repository's labels only."""
        by_id = {label["id"]: label for label in self.labels}
        if not isinstance(wanted, list) or not all(
            type(label_id) is int and label_id in by_id for label_id in wanted
        ):
            return 422, {"message": "labels must be ids of the repository's labels"}, {}
        for label_id in wanted:
            if by_id[label_id] not in pull["labels"]:
                pull["labels"].append(by_id[label_id])
        return 200, pull["labels"], {}

    def _create(self, number: int, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return 422, {"message": "body is missing"}, {}
        comment = self._comment(body["body"], "patchctl-bot")
        self.comments.setdefault(number, []).append(comment)
        return 201, comment, {}

    def _edit(
        self, number: int | None, comment_id: int, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return 422, {"message": "body is missing"}, {}
        for pr, comments in self.comments.items():
            for comment in comments:
                if comment["id"] == comment_id and number in {None, pr}:
                    comment["body"] = body["body"]
                    return 200, comment, {}
        return 404, {"message": "Not Found"}, {}

    def _comment(self, body: str, author: str) -> dict[str, Any]:
        if self.kind == "gitlab":
            return {
                "id": self._new_id(),
                "body": body,
                "system": False,
                "author": {"username": author},
            }
        return {"id": self._new_id(), "body": body, "user": {"login": author}}

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id
