"""Plans for CI: `GET /api/v1/plan` and the catalogue snapshot `GET /api/v1/catalogue`.

CI gets what merging a pull request would do to the live fleet without any database
credentials: it sends the two refs with a read token, the service fetches them into its own
clone of the policy repository (forge PR refs included: `refs/pull/N/head` on GitHub and
Gitea/Forgejo, `refs/merge-requests/N/head` on GitLab), plans both revisions on the fleet it
holds, and answers the plan document (`controller.runtime.plans`). The answer is the token's
tenant scope only: its devices, and the objects of its tenant, its clients and of every tenant.

Ref text is checked before it reaches git (`controller.sources.refs.checked_ref`) and passed
after `--end-of-options`. A revision that does not validate is a 422 with the error count only:
the messages may name other tenants' files (`patchctl validate` in CI shows them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import Depends, Query

from controller.core import review
from controller.core.desired import DesiredState
from controller.runtime import observe, plans
from controller.server import queries
from controller.server.context import Context, read_principal
from controller.server.errors import ApiError
from controller.sources import git as git_source
from controller.sources import refs, repository
from controller.store import catalogue, tokens

if TYPE_CHECKING:
    import git

    from controller.runtime.reconcile import PolicySource

router = queries.strict_router(tags=["read"])
ReadPrincipal = Annotated[tokens.Principal, Depends(read_principal)]
RefQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=refs.MAX_REF_LENGTH,
        description="A branch name, a forge pull request ref (refs/pull/N/head, "
        "refs/merge-requests/N/head) or a commit id.",
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, revoked or expired token."},
    403: {"description": "Not a read token."},
}


@router.get(
    "/plan",
    responses={
        **_ERRORS,
        404: {"description": "A ref or commit the policy repository does not have."},
        422: {
            "description": "A ref that is not well-formed, or a revision that does not validate."
        },
        503: {"description": "This process runs no reconcile loop, or git failed."},
    },
    summary="What merging head into base would do, on the live fleet of the token's scope",
)
async def get_plan(
    principal: ReadPrincipal, context: Context, base: RefQuery, head: RefQuery
) -> dict[str, Any]:
    if context.controller is None:
        raise ApiError(
            503, "this process runs no reconcile loop, so it has no policy repository to plan"
        )
    source = context.controller.reconciler.source
    checked = {name: _checked(name, value) for name, value in (("base", base), ("head", head))}
    now = context.settings.clock()

    def run() -> dict[str, Any]:
        states = _states(source, checked)
        with context.store.read() as conn:
            observed = observe.observe(conn, now=now)
        snapshot = review.catalogue_from_records(observed.catalogue.values())
        return plans.plan_document(
            states["base"],
            states["head"],
            now=now,
            observed=observed,
            catalogue=snapshot,
            scope=principal.tenant,
        )

    return await anyio.to_thread.run_sync(run)


@router.get(
    "/catalogue",
    responses=_ERRORS,
    summary="The patch catalogue snapshot: id, title, severity, OS, classification, product "
    "and rating of every patch",
    description="The file `patchctl plan --catalogue FILE` reads, so that a plan made in CI "
    "without the service shows titles and severities and warns about unknown patch ids.",
)
async def get_catalogue(principal: ReadPrincipal, context: Context) -> dict[str, Any]:
    del principal  # the catalogue is public feed data, the same for every tenant

    def run() -> dict[str, Any]:
        with context.store.read() as conn:
            records = catalogue.load_catalogue(conn)
            version = catalogue.catalogue_version(conn)
        return plans.catalogue_json(
            review.catalogue_from_records(records.values()), version=version
        )

    return await anyio.to_thread.run_sync(run)


def _checked(name: str, value: str) -> str:
    try:
        return refs.checked_ref(value, field=name)
    except git_source.SourceError as exc:
        raise ApiError(422, str(exc), details=[{"field": name, "message": str(exc)}]) from None


def _states(source: PolicySource, checked: dict[str, str]) -> dict[str, DesiredState]:
    states: dict[str, DesiredState] = {}
    with _repository(source, list(checked.values())) as repo:
        for name, rev in checked.items():
            try:
                loaded = repository.load_revision(repo, rev)
            except git_source.SourceError:
                raise ApiError(
                    404, f"{name}: the policy repository has no revision {rev!r}"
                ) from None
            if loaded.result.state is None:
                raise ApiError(
                    422,
                    f"{name}: {loaded.revision} does not validate "
                    f"({len(loaded.result.errors)} error(s)); `patchctl validate --rev` lists them",
                    code="policy-invalid",
                )
            states[name] = loaded.result.state
    return states


def _repository(source: PolicySource, wanted: list[str]) -> git.Repo:
    """The service's repository with `wanted` fetched (a URL source's clone; a local repository
    is read as it is), for the caller to close."""
    try:
        repo = git_source.open_repository(source.repo, state_dir=source.state_dir, fetch=False)
    except git_source.SourceError as exc:
        raise ApiError(503, str(exc)) from None
    try:
        if git_source.is_url(source.repo):
            with refs.FETCH_LOCK:
                refs.fetch(repo, wanted)
    except refs.MissingRefError as exc:
        repo.close()
        raise ApiError(404, str(exc)) from None
    except git_source.SourceError as exc:
        repo.close()
        raise ApiError(503, str(exc)) from None
    return repo
