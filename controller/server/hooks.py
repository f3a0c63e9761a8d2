"""The forge push webhook: a verified push makes the controller fetch and reconcile at once.

Each forge proves the sender its own way; all are checked against one shared secret
(`PATCHCTL_WEBHOOK_SECRET`), in constant time:

- GitHub, Gitea, Forgejo: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`;
- Gitea's own header: `X-Gitea-Signature: <hex HMAC-SHA256>`;
- GitLab: `X-Gitlab-Token: <the secret itself>` (GitLab does not sign bodies);
- anything else: `X-Patchctl-Signature: sha256=<hex>`, the same scheme as patchctl's own
  outgoing webhooks.

The body is not trusted for anything but one thing: a verified call wakes the loop, which
reads the branch from the repository itself. The one thing: with a forge configured
(`[forge]`, `controller.forges`), a verified pull-request event (GitHub and Gitea
`pull_request`, GitLab `Merge Request Hook`) queues the plan of that PR's head for a comment
and a commit status instead; the commits it names are read from the policy repository, and
the answer does not wait for the forge.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from controller.forges import events
from controller.server import models
from controller.server.context import Context
from controller.server.errors import ApiError

router = APIRouter(tags=["webhook"])

SIGNED_HEADERS = ("x-hub-signature-256", "x-patchctl-signature", "x-gitea-signature")


def verify(secret: str, body: bytes, headers: dict[str, str]) -> str | None:
    """Which header proved the call, or None when none did."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for name in SIGNED_HEADERS:
        sent = headers.get(name)
        if sent is not None and hmac.compare_digest(sent.removeprefix("sha256=").lower(), expected):
            return name
    token = headers.get("x-gitlab-token")
    if token is not None and hmac.compare_digest(token.encode(), secret.encode()):
        return "x-gitlab-token"
    return None


@router.post(
    "/api/v1/hooks/git",
    summary="Forge push webhook: verify, then fetch and reconcile now",
    status_code=202,
    responses={
        401: {
            "model": models.ErrorBody,
            "description": "No valid signature or token for the configured secret.",
        },
        503: {
            "model": models.ErrorBody,
            "description": "No webhook secret is configured, or the loop is not running.",
        },
    },
)
async def git_hook(request: Request, context: Context) -> JSONResponse:
    secret = context.settings.webhook_secret
    if not secret:
        raise ApiError(
            503,
            "the git webhook is not configured: start serve with PATCHCTL_WEBHOOK_SECRET set",
        )
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    proof = verify(secret, body, headers)
    if proof is None:
        raise ApiError(
            401,
            "the webhook call is not signed with the configured secret (send "
            "X-Hub-Signature-256, X-Gitea-Signature, X-Gitlab-Token or X-Patchctl-Signature)",
        )
    if context.controller is None:
        raise ApiError(503, "the reconcile loop is not running in this process")
    forge = context.controller.forge
    pull_request = events.pull_request(headers, body) if forge is not None else None
    if forge is not None and pull_request is not None:
        queued = forge.pull_request_seen(pull_request)
        return JSONResponse(
            {
                "triggered": False,
                "verifiedBy": proof,
                "pullRequest": pull_request.label,
                "planQueued": queued,
            },
            status_code=202,
        )
    event = headers.get("x-github-event") or headers.get("x-gitlab-event") or "push"
    context.controller.trigger(f"webhook ({event})")
    return JSONResponse({"triggered": True, "verifiedBy": proof}, status_code=202)
