"""The history walker: events from real commits, merges and squashes, invalid commits,
incremental walks and force-pushes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from historyrepos import ALICE, BOB, GITHUB, MALLORY, History, SshKey, approval

from controller.core.changes import AuditEventType
from controller.kinds import Approval, ObjectKey
from controller.sources import git as git_source
from controller.sources import history, loading
from controller.sources.history import PullRequest, PullRequestStyle

OPENSSL = "policies/approvals/openssl.yaml"
GROUPS_FILE = "inventory/groups/groups.yaml"
SCRIPT = "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: drain, tenant: acme}\nspec: {os: linux, shell: sh, content: 'true'}\n"


def summary(events: tuple[history.AuditEvent, ...]) -> list[tuple[str, str]]:
    return [(str(e.type), str(e.key) if e.key else "") for e in events]


def as_json(text: str) -> dict[str, object]:
    return Approval.model_validate(yaml.safe_load(text)).model_dump(mode="json", by_alias=True)


def test_every_field_of_an_event_is_recorded(git_history: History) -> None:
    """An approval commit yields one event naming commit, people, dates, trailers and content."""
    seed = git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-7123-1"))
    message = "Approve openssl\n\nReviewed-by: Carol Ops <carol@acme.example>\nCo-authored-by: Dave Dba <dave@acme.example>"
    sha = git_history.commit(message, author=BOB, committer=ALICE)

    walked = history_walk(git_history)
    event = walked.events[-1]

    assert {
        "type": "ApprovalGranted",
        "revision": f"main@sha1:{sha}",
        "commit": {
            "sha": sha,
            "parents": [seed],
            "author": {"name": "Bob Builder", "email": "bob@acme.example"},
            "committer": {"name": "Alice Admin", "email": "alice@acme.example"},
            "authoredAt": "2026-01-01T02:00:00+00:00",
            "committedAt": "2026-01-01T02:00:00+00:00",
            "subject": "Approve openssl",
            "message": message,
            "pullRequest": None,
            "trailers": [
                {"key": "Reviewed-by", "value": "Carol Ops <carol@acme.example>"},
                {"key": "Co-authored-by", "value": "Dave Dba <dave@acme.example>"},
            ],
            "signature": {"status": "unsigned", "key": None, "primaryKey": None, "signer": None},
            "mergedHeadAuthor": None,
        },
        "object": {"kind": "Approval", "tenant": "acme/retail", "name": "openssl"},
        "action": "added",
        "changeEvent": "ApprovalGranted",
        "path": OPENSSL,
        "before": None,
        "after": as_json(approval("openssl", "USN-7123-1")),
        "errors": [],
        "rewrite": None,
        "verdict": None,
    } == event.to_dict()
    assert datetime(2026, 1, 1, 2, tzinfo=UTC) == event.commit.authored_at  # type: ignore[union-attr]
    assert (sha, 2, 2) == (walked.tip, walked.commits_read, walked.commits_loaded)


def history_walk(repo: History, **options: object) -> history.HistoryWalk:
    return history.walk(repo.repo, "main", **options)  # type: ignore[arg-type]


def test_the_first_commit_adds_every_object(git_history: History) -> None:
    """The root commit is diffed against an empty repository: every object is added."""
    git_history.seed()
    assert [
        ("DeviceGroupAdded", "DeviceGroup/acme/all-windows"),
        ("DeviceGroupAdded", "DeviceGroup/acme/retail/linux-web"),
        ("TenantAdded", "Tenant/*/acme"),
    ] == summary(history_walk(git_history).events)


def test_changes_and_removals_carry_before_and_after(git_history: History) -> None:
    """Editing an approval is ApprovalChanged with both versions; deleting it is ApprovalRevoked."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("grant")
    git_history.write(OPENSSL, approval("openssl", "USN-1-1, USN-2-1"))
    git_history.commit("extend", author=BOB)
    git_history.remove(OPENSSL)
    git_history.commit("revoke", author=MALLORY)

    events = history_walk(git_history).events[3:]

    assert ["ApprovalGranted", "ApprovalChanged", "ApprovalRevoked"] == [
        str(e.type) for e in events
    ]
    assert ["alice@acme.example", "bob@acme.example", "mallory@evil.example"] == [
        e.commit.author.email for e in events
    ]  # type: ignore[union-attr]
    changed, revoked = events[1], events[2]
    assert (["USN-1-1"], ["USN-1-1", "USN-2-1"]) == (
        changed.before["spec"]["patches"],
        changed.after["spec"]["patches"],
    )  # type: ignore[index]
    assert (["USN-1-1", "USN-2-1"], None, OPENSSL) == (
        revoked.before["spec"]["patches"],
        revoked.after,
        revoked.path,
    )  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("policies/scripts/drain.yaml", SCRIPT, ("ScriptAdded", "Script/acme/drain")),
        (
            "policies/baselines/b.yaml",
            "apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {name: b, tenant: acme}\nspec: {os: windows, targets: {groups: [all-windows]}}\n",
            ("BaselineAdded", "Baseline/acme/b"),
        ),
        (
            "policies/whitelists/w.yaml",
            "apiVersion: patchctl/v1\nkind: Whitelist\nmetadata: {name: w, tenant: acme}\nspec: {targets: {groups: [all-windows]}, patches: [{id: KB1}]}\n",
            ("WhitelistAdded", "Whitelist/acme/w"),
        ),
        (
            "policies/schedules/w.yaml",
            "apiVersion: patchctl/v1\nkind: PatchWindow\nmetadata: {name: w, tenant: acme}\nspec: {targets: {groups: [all-windows]}, recurrence: {cron: '0 2 * * SUN'}, timezone: UTC, duration: 2h}\n",
            ("WindowAdded", "PatchWindow/acme/w"),
        ),
    ],
    ids=["script", "baseline", "whitelist", "window"],
)
def test_each_kind_has_its_own_event(
    git_history: History, path: str, text: str, expected: tuple[str, str]
) -> None:
    """Baselines, whitelists, windows and scripts are named in the event vocabulary."""
    git_history.seed()
    git_history.write(path, text)
    git_history.commit("add")
    assert [expected] == summary(history_walk(git_history).events[3:])


def test_moving_a_document_between_files_changes_nothing(git_history: History) -> None:
    """An object moved to another file, unchanged, is not an event; its path follows it."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("grant")
    git_history.remove(OPENSSL)
    git_history.write("policies/approvals/all.yaml", approval("openssl", "USN-1-1"))
    git_history.commit("move")
    walked = history_walk(git_history)
    assert [("ApprovalGranted", "Approval/acme/retail/openssl")] == summary(walked.events[3:])
    state = walked.state()
    assert state is not None
    assert (
        "policies/approvals/all.yaml"
        == state.origins[ObjectKey("Approval", "acme/retail", "openssl")].path
    )


def test_commits_outside_the_policy_folders_are_read_but_load_nothing(git_history: History) -> None:
    """A README or a non-YAML file under policies/ produces no event and no policy load."""
    git_history.seed()
    git_history.write("README.md", "hello\n")
    git_history.write("policies/approvals/NOTES.txt", "notes\n")
    tip = git_history.commit("docs")
    walked = history_walk(git_history)
    assert (3, 2, 1, tip) == (
        len(walked.events),
        walked.commits_read,
        walked.commits_loaded,
        walked.tip,
    )


# --- pull requests ---------------------------------------------------------------------------


def test_a_github_merge_commit_is_one_event_with_its_pull_request(git_history: History) -> None:
    """A `--no-ff` merge lands as one event, on the merge, naming the PR and its head's author."""
    git_history.seed()
    git_history.git("checkout", "-q", "-b", "bob/openssl")
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    head = git_history.commit("Approve openssl", author=BOB)
    git_history.git("checkout", "-q", "main")
    merge = git_history.merge(
        "bob/openssl",
        "Merge pull request #12 from acme/bob/openssl\n\nApprove openssl",
        author=ALICE,
    )

    walked = history_walk(git_history)
    event = walked.events[-1]

    assert [("ApprovalGranted", "Approval/acme/retail/openssl")] == summary(walked.events[3:])
    facts = event.commit
    assert facts is not None
    assert (merge, (facts.parents[0], head)) == (facts.sha, facts.parents)
    assert (PullRequest(12, PullRequestStyle.GITHUB_MERGE), "#12") == (
        facts.pull_request,
        facts.pull_request.ref,
    )  # type: ignore[union-attr]
    assert (ALICE.email, GITHUB.email, BOB.email) == (
        facts.author.email,
        facts.committer.email,
        facts.merged_head_author.email,  # type: ignore[union-attr]
    )
    assert 2 == walked.commits_read  # first-parent: the branch commit is not walked on its own


def test_a_squash_merge_carries_its_number_and_trailers(git_history: History) -> None:
    """A squash commit `Title (#34)` by the PR author, committed by the forge, keeps its trailers."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit(
        "Approve openssl (#34)\n\n* first try\n\nCo-authored-by: Dave Dba <dave@acme.example>\nApproved-by: Alice Admin <alice@acme.example>",
        author=BOB,
        committer=GITHUB,
    )
    facts = history_walk(git_history).events[-1].commit
    assert facts is not None
    assert PullRequest(34, PullRequestStyle.GITHUB_SQUASH) == facts.pull_request
    assert ((("Co-authored-by", "dave@acme.example"),), ("alice@acme.example",)) == (
        tuple((t.key, t.person.email) for t in facts.trailers if t.key == "Co-authored-by"),  # type: ignore[union-attr]
        tuple(p.email for p in facts.trailer_people("approved-by")),
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Merge pull request #12 from acme/bob-openssl\n\nApprove openssl",
            PullRequest(12, PullRequestStyle.GITHUB_MERGE),
        ),
        ("Approve openssl (#34)", PullRequest(34, PullRequestStyle.GITHUB_SQUASH)),
        (
            "Approve openssl (#34)\n\nCo-authored-by: A <a@x>",
            PullRequest(34, PullRequestStyle.GITHUB_SQUASH),
        ),
        (
            "Merge branch 'openssl' into 'main'\n\nApprove openssl\n\nSee merge request infra/policies!56",
            PullRequest(56, PullRequestStyle.GITLAB, "infra/policies"),
        ),
        (
            "Merge pull request 'Approve openssl' (#7) from bob/openssl into main",
            PullRequest(7, PullRequestStyle.GITEA),
        ),
        (
            "Merged in bob/openssl (pull request #8)\n\nApprove openssl",
            PullRequest(8, PullRequestStyle.BITBUCKET),
        ),
        ("Merged PR 9: Approve openssl", PullRequest(9, PullRequestStyle.AZURE_DEVOPS)),
        ("Approve openssl", None),
        ("Fix #12 in the baseline", None),
        ("Mention (#12) in the middle of a subject", None),
        ("Merge branch 'feature'", None),
    ],
    ids=[
        "github-merge",
        "github-squash",
        "github-squash-with-trailers",
        "gitlab-merge-request",
        "gitea-merge",
        "bitbucket-merge",
        "azure-devops-merge",
        "plain-commit",
        "issue-reference",
        "number-mid-subject",
        "local-merge",
    ],
)
def test_pull_request_numbers_are_read_from_forge_messages(
    message: str, expected: PullRequest | None
) -> None:
    """Each forge's merge or squash message yields its PR/MR number; other messages none."""
    assert expected == history.parse_pull_request(message)


def test_gitlab_references_print_with_their_project() -> None:
    """A GitLab merge request prints as `group/project!34`, a GitHub PR as `#12`."""
    assert ("infra/policies!56", "#12") == (
        PullRequest(56, PullRequestStyle.GITLAB, "infra/policies").ref,
        PullRequest(12, PullRequestStyle.GITHUB_MERGE).ref,
    )


# --- invalid commits -------------------------------------------------------------------------


def test_an_invalid_commit_is_reported_and_the_trail_continues_from_the_last_valid_one(
    git_history: History,
) -> None:
    """A bad commit yields PolicyInvalid with the loader's errors; the fix carries the change,
    attributed to the commit that made it."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1", group="no-such-group"))
    bad = git_history.commit("grant with a typo", author=BOB)
    git_history.write("policies/approvals/other.yaml", approval("other", "USN-2-1"))
    still_bad = git_history.commit("unrelated", author=ALICE)
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    fixed = git_history.commit("fix the group", author=ALICE)

    walked = history_walk(git_history)
    events = walked.events[3:]

    expected_errors = tuple(
        str(p)
        for p in loading.load_policy(
            git_source.read_commit(git_history.repo, bad), revision=None
        ).errors
    )
    assert 1 == len(expected_errors)
    assert [
        ("PolicyInvalid", bad, bad, expected_errors),
        ("PolicyInvalid", still_bad, still_bad, expected_errors),
        ("ApprovalGranted", fixed, fixed, ()),
        ("ApprovalGranted", fixed, still_bad, ()),
    ] == [(str(e.type), e.revision.rsplit(":", 1)[1], e.commit.sha, e.errors) for e in events]  # type: ignore[union-attr]
    assert (
        "policies/approvals/openssl.yaml:6:22: spec.targets.groups[0]: no DeviceGroup 'no-such-group' in tenant acme/retail or its partner"
        == expected_errors[0]
    )
    assert f"main@sha1:{fixed}" == walked.valid_revision


def test_a_branch_that_ends_invalid_keeps_its_last_valid_state(git_history: History) -> None:
    """The walk's state is the last valid revision, not the broken tip."""
    valid = git_history.seed()
    git_history.write(OPENSSL, "kind: [")
    git_history.commit("broken")
    walked = history_walk(git_history)
    assert (f"main@sha1:{valid}", "PolicyInvalid") == (
        walked.valid_revision,
        str(walked.events[-1].type),
    )
    assert walked.events[-1].errors[0].startswith(f"{OPENSSL}:1:")


# --- incremental walks -----------------------------------------------------------------------


def test_an_incremental_walk_reads_only_the_new_commits(git_history: History) -> None:
    """With the previous tip and cache, only commits after it are read and loaded."""
    git_history.seed()
    first = history_walk(git_history)
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("grant")
    git_history.write(OPENSSL, approval("openssl", "USN-1-1, USN-2-1"))
    tip = git_history.commit("extend")

    walked = history_walk(git_history, since_sha=first.tip, cache=first.cache)

    assert (tip, 2, 2) == (walked.tip, walked.commits_read, walked.commits_loaded)
    assert ["ApprovalGranted", "ApprovalChanged"] == [str(e.type) for e in walked.events]


def test_an_incremental_walk_without_cache_loads_the_cursor_once(git_history: History) -> None:
    """After a restart (no cache), the cursor's policy is loaded and the same events come out."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    cursor = git_history.commit("grant")
    git_history.write(OPENSSL, approval("openssl", "USN-2-1"))
    git_history.commit("swap")
    full = history_walk(git_history)
    resumed = history_walk(git_history, since_sha=cursor)
    assert [e.to_dict() for e in full.events[-1:]] == [e.to_dict() for e in resumed.events]
    assert 1 == resumed.commits_read


def test_a_cursor_at_an_invalid_commit_resumes_from_its_last_valid_one(
    git_history: History,
) -> None:
    """Resuming after a bad commit diffs against the last valid policy, not the broken one."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1", group="typo"))
    cursor = git_history.commit("broken")
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    fixed = git_history.commit("fixed")
    resumed = history_walk(git_history, since_sha=cursor)
    assert [("ApprovalGranted", fixed)] == [(str(e.type), e.commit.sha) for e in resumed.events]  # type: ignore[union-attr]


def test_nothing_new_is_an_empty_walk(git_history: History) -> None:
    """Walking from the current tip reads nothing."""
    git_history.seed()
    first = history_walk(git_history)
    again = history_walk(git_history, since_sha=first.tip, cache=first.cache)
    assert ((), 0, first.tip) == (again.events, again.commits_read, again.tip)


# --- force-pushes ----------------------------------------------------------------------------


def test_a_force_push_is_reported_with_both_tips_and_never_merged_silently(
    git_history: History,
) -> None:
    """A rewritten branch yields HistoryRewritten, the undone changes, then the new commits."""
    base = git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    dropped = git_history.commit("grant openssl", author=MALLORY)
    first = history_walk(git_history)
    git_history.git("reset", "-q", "--hard", base)
    git_history.write("policies/approvals/other.yaml", approval("other", "USN-2-1"))
    new_tip = git_history.commit("grant other")

    walked = history_walk(git_history, since_sha=first.tip, cache=first.cache)

    rewrite = walked.events[0]
    assert ("HistoryRewritten", None, history.Rewrite(dropped, new_tip, base, (dropped,))) == (
        str(rewrite.type),
        rewrite.commit,
        rewrite.rewrite,
    )
    assert [
        ("ApprovalRevoked", "Approval/acme/retail/openssl", None),
        ("ApprovalGranted", "Approval/acme/retail/other", new_tip),
    ] == [(str(e.type), str(e.key), e.commit.sha if e.commit else None) for e in walked.events[1:]]
    assert (f"main@sha1:{base}", 1) == (walked.events[1].revision, walked.commits_read)


def test_a_force_push_is_detected_without_the_cache(git_history: History) -> None:
    """The cursor alone is enough to tell that the branch no longer contains it."""
    base = git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    old_tip = git_history.commit("grant")
    git_history.git("reset", "-q", "--hard", base)
    git_history.write(OPENSSL, approval("openssl", "USN-9-1"))
    new_tip = git_history.commit("grant something else")
    walked = history_walk(git_history, since_sha=old_tip)
    assert [
        ("HistoryRewritten", ""),
        ("ApprovalRevoked", "Approval/acme/retail/openssl"),
        ("ApprovalGranted", "Approval/acme/retail/openssl"),
    ] == summary(walked.events)
    assert (old_tip, new_tip) == (
        walked.events[0].rewrite.old_tip,
        walked.events[0].rewrite.new_tip,
    )  # type: ignore[union-attr]


# --- loading, fast and faithful ----------------------------------------------------------------


def test_every_revision_loads_as_the_loader_loads_it(example_repo: object, tmp_path: Path) -> None:
    """The walk's incremental state equals `load_policy` of the commit, commit after commit."""
    repo = History(tmp_path / "copy")
    repo.policy.copy_example()
    repo.commit("example")
    steps = [
        (
            "policies/approvals/2026-11-openssl.yaml",
            lambda t: t.replace("USN-7123-1", "USN-7123-1, USN-7200-1"),
        ),
        ("inventory/groups/retail.yaml", lambda t: t.replace("Web shop front ends", "Web shop")),
        ("policies/scripts/linux.yaml", lambda t: t.replace("sleep 5", "sleep 6")),
        (
            "inventory/tenants.yaml",
            lambda t: t.replace(
                "clients: [retail, logistics]", "clients: [retail, logistics, extra]"
            ),
        ),
    ]
    walked = history_walk(repo)
    for path, edit in steps:
        target = repo.path / path
        target.write_text(edit(target.read_text()))
        sha = repo.commit(f"edit {path}")
        walked = history_walk(repo, since_sha=walked.tip, cache=walked.cache)
        expected = loading.load_policy(
            git_source.read_commit(repo.repo, sha), revision=f"main@sha1:{sha}"
        ).state
        actual = walked.state()
        assert expected is not None
        assert actual is not None
        assert (expected.objects, expected.origins, expected.revision) == (
            actual.objects,
            actual.origins,
            actual.revision,
        )


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a, tenant: acme}\nspec: {patches: [KB1], targets: {groups: [g]}, reason: r, expires: 2027-01-31}\n",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a}\nspec:\n  patches: ['KB1', \"KB2\"]\n  targets: {groups: [g]}\n  reason: >\n    folded\n    text\n",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: &m {name: a}\nspec: {patches: [KB1], targets: {groups: [g]}, reason: r}\n",
        "base: &b {groups: [g]}\n---\napiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a}\nspec: {patches: [KB1], targets: {<<: *b}, reason: r}\n",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a}\nspec: {patches: [!!str 123], targets: {groups: [g]}, reason: !!binary aGVsbG8=}\n",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a, labels: {yes: on, 1: 2}}\nspec: {patches: [KB1], targets: {groups: [g]}, reason: r}\n",
        "---\n...\n---\napiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a}\nspec: {patches: [KB1], targets: {groups: [g]}, reason: r}\n",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a}\nspec: {patches: [KB1], targets: {groups: [g]}, reason: r, bogus: 1}\n",
        "kind: [\n",
        "a: " + "[" * 2000 + "]" * 2000 + "\n",
        "\xff\xfe",
    ],
    ids=[
        "plain-with-date",
        "quoted-and-folded",
        "anchor",
        "merge-key",
        "explicit-tags",
        "yaml11-booleans-and-int-keys",
        "empty-documents",
        "unknown-field",
        "syntax-error",
        "deep-nesting",
        "not-utf8",
    ],
)
def test_the_fast_parser_agrees_with_the_loader(text: str) -> None:
    """Objects, lines and problems of a file are the loader's, whichever parser read it."""
    data = text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe"
    source = loading.SourceFile("policies/approvals/a.yaml", data)
    parsed = history.parse_policy_file(source)
    loaded = loading.load_policy([source], revision=None)
    file_problems = [
        p for p in loaded.problems if "DeviceGroup" not in p.message and "tenant" not in p.field
    ]
    assert [str(p) for p in file_problems] == [str(p) for p in parsed.problems]
    if not parsed.problems:
        state = history.state_of({source.path: parsed}, None)
        assert [o.model_dump() for o in state.objects] == [
            o.model_dump()
            for o in loading.load_policy(
                [source, *_tenant_and_group()], revision=None
            ).state.objects  # type: ignore[union-attr]
            if o.KIND == "Approval"
        ]


def _tenant_and_group() -> list[loading.SourceFile]:
    return [
        loading.SourceFile(
            "inventory/t.yaml", b"apiVersion: patchctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"
        ),
        loading.SourceFile(
            "inventory/g.yaml",
            b"apiVersion: patchctl/v1\nkind: DeviceGroup\nmetadata: {name: g}\nspec: {selector: {os: linux}}\n",
        ),
    ]


def test_a_symlinked_policy_file_follows_its_target(git_history: History) -> None:
    """A policy file that is a symlink changes when its target changes, even outside policies/."""
    git_history.seed()
    git_history.write("shared/openssl.yaml", approval("openssl", "USN-1-1"))
    (git_history.path / "policies/approvals").mkdir(parents=True)
    (git_history.path / OPENSSL).symlink_to("../../shared/openssl.yaml")
    git_history.commit("link")
    git_history.write("shared/openssl.yaml", approval("openssl", "USN-2-1"))
    git_history.commit("edit the target only")
    events = history_walk(git_history).events[3:]
    assert [("ApprovalGranted", ["USN-1-1"]), ("ApprovalChanged", ["USN-2-1"])] == [
        (str(e.type), e.after["spec"]["patches"])  # type: ignore[index]
        for e in events
    ]


def test_a_rename_of_an_object_is_a_removal_and_an_addition(git_history: History) -> None:
    """Objects are identified by kind, tenant and name: renaming one revokes and grants."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("grant")
    git_history.write(OPENSSL, approval("openssl-v2", "USN-1-1"))
    git_history.commit("rename")
    assert [
        (str(AuditEventType.APPROVAL_REVOKED), "Approval/acme/retail/openssl"),
        (str(AuditEventType.APPROVAL_GRANTED), "Approval/acme/retail/openssl-v2"),
    ] == summary(history_walk(git_history).events[4:])


def test_events_read_back_from_their_json_are_equal(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """`AuditEvent.from_dict(event.to_dict())` is the event: what the store keeps is enough."""
    base = git_history.seed()
    git_history.git("checkout", "-q", "-b", "pr")
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit(
        "grant\n\nApproved-by: Alice Admin <alice@acme.example>", key=ssh_keys["alice"]
    )
    git_history.git("checkout", "-q", "main")
    git_history.merge("pr", "Merge pull request #3 from acme/pr", author=BOB)
    git_history.write(OPENSSL, "kind: [")
    git_history.commit("break it")
    first = history_walk(git_history)
    git_history.git("reset", "-q", "--hard", base)
    git_history.commit("empty")
    rewritten = history_walk(git_history, since_sha=first.tip, cache=first.cache)
    events = [*first.events, *rewritten.events]
    assert {"ApprovalGranted", "PolicyInvalid", "HistoryRewritten", "ApprovalRevoked"} <= {
        str(e.type) for e in events
    }
    assert events == [
        history.AuditEvent.from_dict(json.loads(json.dumps(e.to_dict()))) for e in events
    ]


BREAKAGES = {
    "duplicate-across-files": ("policies/approvals/copy.yaml", approval("openssl", "USN-3-1")),
    "referenced-group-removed": (
        GROUPS_FILE,
        "apiVersion: patchctl/v1\nkind: DeviceGroup\nmetadata: {name: all-windows, tenant: acme}\nspec: {selector: {os: windows}}\n",
    ),
    "client-removed-from-tenant": (
        "inventory/tenants.yaml",
        "apiVersion: patchctl/v1\nkind: Tenant\nmetadata: {name: acme}\nspec: {clients: []}\n",
    ),
    "schema-error": (
        OPENSSL,
        approval("openssl", "USN-1-1").replace("reason: test", "reason: test\n  colour: red"),
    ),
    "yaml-error": (OPENSSL, "apiVersion: [\n"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_invalid_revisions_report_the_loader_s_errors(git_history: History, breakage: str) -> None:
    """Whatever breaks a tree (another file, a referenced group, a tenant), the errors are the loader's."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("grant")
    first = history_walk(git_history)
    path, text = BREAKAGES[breakage]
    git_history.write(path, text)
    sha = git_history.commit(f"break: {breakage}")
    walked = history_walk(git_history, since_sha=first.tip, cache=first.cache)
    expected = tuple(
        str(p)
        for p in loading.load_policy(
            git_source.read_commit(git_history.repo, sha), revision=None
        ).errors
    )
    assert expected
    assert [("PolicyInvalid", expected)] == [(str(e.type), e.errors) for e in walked.events]
