"""Who may approve: the access policy file, the verdict rules, forge merges, and the approvals a
rejected change keeps away from the planner."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from historyrepos import ALICE, BOB, GITHUB, MALLORY, Author, GpgKey, History, SshKey, approval

from controller.core.changes import AuditEventType, ChangeAction, ObjectChange, Verdict, event_for
from controller.kinds import ObjectKey
from controller.runtime import access
from controller.runtime.access import AccessPolicy, Forge, TenantRule
from controller.sources import history, signatures
from controller.sources.history import CommitFacts, Person, PullRequest, PullRequestStyle, Trailer
from controller.sources.signatures import Signature, SignatureStatus

SHA = "a" * 40
SHORT = SHA[:12]
CAROL = Author("Carol Ops", "carol@retail.example")
OPENSSL = "policies/approvals/openssl.yaml"

POLICY = AccessPolicy(
    enforced=True,
    tenants={
        "acme": TenantRule(
            "acme",
            ("*@acme.example",),
            require_signed=True,
            fingerprints=frozenset({"SHA256:alice"}),
        ),
        "acme/retail": TenantRule(
            "acme/retail", ("carol@retail.example",), require_signed=False, fingerprints=frozenset()
        ),
    },
    forges=(Forge("github", ("noreply@github.com",), frozenset({"GITHUB-KEY"})),),
)


def person(who: Author) -> Person:
    return Person(who.name, who.email)


def facts(
    author: Author = BOB,
    *,
    committer: Author | None = None,
    signature: Signature = signatures.UNSIGNED,
    merged: Author | None = None,
    message: str = "change",
    trailers: tuple[tuple[str, Author], ...] = (),
) -> CommitFacts:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    return CommitFacts(
        sha=SHA,
        parents=("b" * 40, "c" * 40) if merged else ("b" * 40,),
        author=person(author),
        committer=person(committer or author),
        authored_at=stamp,
        committed_at=stamp,
        message=message,
        pull_request=history.parse_pull_request(message),
        trailers=tuple(Trailer(key, str(who)) for key, who in trailers),
        signature=signature,
        merged_head_author=person(merged) if merged else None,
    )


def change(
    tenant: str | None = "acme/retail",
    *,
    kind: str = "Approval",
    action: ChangeAction = ChangeAction.ADDED,
) -> ObjectChange:
    content = {
        "kind": kind,
        "metadata": {"name": "openssl", "tenant": tenant},
        "spec": {"patches": ["USN-1-1"]},
    }
    return ObjectChange(
        key=ObjectKey(kind, tenant, "openssl"),
        action=action,
        event=event_for(kind, action),
        before=None if action is ChangeAction.ADDED else content,
        after=None if action is ChangeAction.REMOVED else content,
    )


def good(key: str, signer: str) -> Signature:
    return Signature(SignatureStatus.GOOD, key, None, signer)


MERGE_12 = "Merge pull request #12 from acme/carol/openssl"


@pytest.mark.parametrize(
    ("policy", "the_change", "commit", "expected"),
    [
        pytest.param(
            AccessPolicy.open(),
            change(),
            facts(MALLORY),
            (True, "no access policy is configured"),
            id="no-policy",
        ),
        pytest.param(
            POLICY,
            change(kind="Baseline"),
            facts(MALLORY),
            (True, "Baseline changes are not access-controlled"),
            id="unguarded-kind",
        ),
        pytest.param(
            POLICY,
            change(action=ChangeAction.REMOVED),
            facts(MALLORY),
            (True, "a removal only narrows what is approved"),
            id="revocation-by-anyone",
        ),
        pytest.param(
            POLICY,
            change(),
            None,
            (False, "restored by a rewrite of the branch history, not by a reviewed commit"),
            id="restored-by-rewrite",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(CAROL, signature=Signature(SignatureStatus.BAD, "SHA256:x")),
            (False, f"commit {SHORT} has a bad signature: it was altered after signing"),
            id="bad-signature",
        ),
        pytest.param(
            POLICY,
            change("initech"),
            facts(CAROL),
            (False, "the access policy names no approvers for initech"),
            id="tenant-without-approvers",
        ),
        pytest.param(
            POLICY,
            change(None),
            facts(BOB),
            (False, "the access policy names no approvers for objects of every tenant"),
            id="global-object-without-star-entry",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(CAROL),
            (
                True,
                "author carol@retail.example may approve for acme/retail (matches 'carol@retail.example')",
            ),
            id="client-approver",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(BOB),
            (
                True,
                "author bob@acme.example may approve for acme/retail (matches '*@acme.example')",
            ),
            id="partner-entry-covers-client",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(MALLORY),
            (
                False,
                f"author mallory@evil.example of commit {SHORT} may not approve for acme/retail",
            ),
            id="stranger",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(BOB),
            (False, f"commit {SHORT} is unsigned; acme requires commits signed by a trusted key"),
            id="unsigned-where-required",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(MALLORY, signature=good("SHA256:alice", "alice@acme.example")),
            (True, "signer alice@acme.example may approve for acme (matches '*@acme.example')"),
            id="signer-counts-not-author",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(ALICE, signature=good("SHA256:other", "alice@acme.example")),
            (False, f"commit {SHORT} is signed by key SHA256:other, which is not trusted for acme"),
            id="good-signature-untrusted-key",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(ALICE, signature=Signature(SignatureStatus.UNKNOWN_KEY, "SHA256:m")),
            (
                False,
                f"commit {SHORT} is unknown-key; acme requires commits signed by a trusted key",
            ),
            id="spoofed-author-unknown-key",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(ALICE, signature=good("SHA256:alice", "mallory@evil.example")),
            (False, f"signer mallory@evil.example of commit {SHORT} may not approve for acme"),
            id="trusted-key-of-someone-not-allowed",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(MALLORY, committer=GITHUB, merged=CAROL, message=MERGE_12),
            (
                True,
                f"github merge {SHORT} of #12: pull request author carol@retail.example may approve for acme/retail (matches 'carol@retail.example')",
            ),
            id="forge-merge-by-pr-author",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(CAROL, committer=GITHUB, merged=MALLORY, message=MERGE_12),
            (
                True,
                f"github merge {SHORT} of #12: author carol@retail.example may approve for acme/retail (matches 'carol@retail.example')",
            ),
            id="forge-merge-by-allowed-merger",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(
                MALLORY,
                committer=GITHUB,
                message="Approve (#13)",
                trailers=(("Approved-by", CAROL),),
            ),
            (
                True,
                f"github merge {SHORT} of #13: approver carol@retail.example may approve for acme/retail (matches 'carol@retail.example')",
            ),
            id="forge-squash-approved-by",
        ),
        pytest.param(
            POLICY,
            change(),
            facts(
                MALLORY,
                committer=GITHUB,
                message="Approve (#13)",
                trailers=(("Co-authored-by", CAROL),),
            ),
            (
                False,
                f"github merge {SHORT} of #13: none of mallory@evil.example may approve for acme/retail",
            ),
            id="forge-co-author-is-no-approver",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(BOB, committer=GITHUB, merged=BOB, message=MERGE_12),
            (
                False,
                f"github commit {SHORT} is unsigned, not signed by a key of github; acme requires signed commits",
            ),
            id="forge-unsigned-where-required",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(
                BOB,
                committer=GITHUB,
                message=MERGE_12,
                merged=MALLORY,
                signature=good("GITHUB-KEY", "GitHub <noreply@github.com>"),
            ),
            (
                True,
                f"github merge {SHORT} of #12: author bob@acme.example may approve for acme (matches '*@acme.example')",
            ),
            id="forge-signed-by-forge-key",
        ),
        pytest.param(
            POLICY,
            change("acme"),
            facts(
                MALLORY,
                committer=GITHUB,
                message=MERGE_12,
                merged=BOB,
                signature=good("SHA256:alice", "alice@acme.example"),
            ),
            (
                False,
                f"github commit {SHORT} is good, not signed by a key of github; acme requires signed commits",
            ),
            id="forge-committer-spoofed-with-another-key",
        ),
    ],
)
def test_who_may_approve(
    policy: AccessPolicy,
    the_change: ObjectChange,
    commit: CommitFacts | None,
    expected: tuple[bool, str],
) -> None:
    """Each rule of `judge_change`, with the reason an operator reads in the audit trail."""
    verdict = access.judge_change(the_change, commit, policy)
    assert expected == (verdict.applied, verdict.reason)


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        ("acme/retail", (("carol@retail.example", "*@acme.example", "root@acme.example"), False)),
        ("acme", (("*@acme.example", "root@acme.example"), True)),
        ("acme/logistics", (("*@acme.example", "root@acme.example"), True)),
        (None, (("root@acme.example",), False)),
        ("initech", (("root@acme.example",), False)),
    ],
    ids=[
        "client-inherits-partner-and-star",
        "partner",
        "client-without-entry",
        "global-object",
        "unknown-tenant",
    ],
)
def test_rules_merge_the_tenant_its_partner_and_star(
    tenant: str | None, expected: tuple[tuple[str, ...], bool]
) -> None:
    """Approvers add up along the tenant path; `require_signed` comes from the nearest entry."""
    policy = dataclasses.replace(
        POLICY,
        tenants={**POLICY.tenants, "*": TenantRule("*", ("root@acme.example",), None, frozenset())},
    )
    rules = policy.rules_for(tenant)
    assert expected == (rules.approvers, rules.require_signed)


# --- the configuration file ------------------------------------------------------------------


def write_config(tmp_path: Path, ssh: SshKey, gpg: GpgKey | None) -> Path:
    keys = f'[[access.keys]]\nname = "alice"\nssh = "{ssh.allowed_signers_line}"\n'
    forge_keys = "[]"
    if gpg is not None:
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "web-flow.asc").write_text(gpg.armored)
        keys += f'\n[[access.keys]]\nname = "web-flow"\ngpg-file = "keys/web-flow.asc"\nfingerprint = "{gpg.fingerprint}"\n'
        forge_keys = '["web-flow"]'
    path = tmp_path / "patchctl.toml"
    path.write_text(
        '[serve]\nlisten = "127.0.0.1:9000"\n\n'
        "[access]\nrequire-signed = false\n\n"
        f"{keys}\n"
        '[access.tenants."*"]\napprovers = ["Alice@Acme.example"]\nkeys = ["alice"]\n\n'
        "[access.tenants.acme]\napprovers = ['*@acme.example']\nrequire-signed = true\nkeys = [\"alice\"]\n\n"
        f'[[access.forges]]\nname = "github"\ncommitters = ["noreply@github.com"]\nkeys = {forge_keys}\n'
    )
    return path


def test_the_access_table_of_patchctl_toml_loads(
    tmp_path: Path, ssh_keys: dict[str, SshKey], gpg_key: GpgKey
) -> None:
    """Keys resolve to fingerprints, patterns are lower-cased, forges get their keys."""
    alice = ssh_keys["alice"]
    policy = access.load_access(write_config(tmp_path, alice, gpg_key))
    assert (True, False, frozenset({"Approval", "Whitelist"})) == (
        policy.enforced,
        policy.require_signed,
        policy.guarded_kinds,
    )
    assert (
        TenantRule("*", ("alice@acme.example",), None, frozenset({alice.fingerprint()}))
        == policy.tenants["*"]
    )
    assert (
        TenantRule(
            "acme",
            ("*@acme.example",),
            require_signed=True,
            fingerprints=frozenset({alice.fingerprint()}),
        )
        == policy.tenants["acme"]
    )
    (forge,) = policy.forges
    assert ("github", ("noreply@github.com",), True) == (
        forge.name,
        forge.committers,
        gpg_key.fingerprint in forge.fingerprints,
    )
    assert ((alice.allowed_signers_line,), (gpg_key.armored,)) == (
        policy.trusted.ssh_allowed_signers,
        policy.trusted.gpg_public_keys,
    )


def test_a_configuration_without_an_access_table_is_open(tmp_path: Path) -> None:
    """No `[access]` table: nothing is enforced, unless the caller requires the table."""
    path = tmp_path / "patchctl.toml"
    path.write_text('[serve]\nlisten = "127.0.0.1:9000"\n')
    assert AccessPolicy.open() == access.load_access(path)
    with pytest.raises(access.AccessError, match="no \\[access\\] table"):
        access.load_access(path, required=True)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"tenants": {"acme": {"approvers": ["a@x"], "keys": ["nobody"]}}},
            "access.tenants.acme.keys: no key named 'nobody' (known: none)",
        ),
        (
            {"tenants": {"Acme Corp": {"approvers": ["a@x"]}}},
            'access.tenants."Acme Corp": not a tenant path',
        ),
        (
            {"tenants": {"acme": {"approverz": ["a@x"]}}},
            "access.tenants.acme.approverz: Extra inputs are not permitted",
        ),
        (
            {"guarded-kinds": ["Approval", "Aproval"]},
            "access.guarded-kinds: 'Aproval' is not one of",
        ),
        ({"keys": [{"name": "k"}]}, "access.keys[0]: give exactly one of ssh, gpg or gpg-file"),
        (
            {"keys": [{"name": "k", "ssh": "ssh-ed25519 AAAA"}]},
            "access.keys[0]: an allowed-signers line starts with the signer's identity",
        ),
        (
            {"keys": [{"name": "k", "ssh": "a@x ssh-ed25519 !!!notbase64"}]},
            "access.keys[0]: not an SSH public key",
        ),
        (
            {"keys": [{"name": "k", "gpg-file": "missing.asc"}]},
            "access.keys[0]: [Errno 2] No such file or directory",
        ),
        (
            {"forges": [{"name": "github", "committers": []}]},
            "access.forges[0].committers: Tuple should have at least 1 item",
        ),
    ],
    ids=[
        "unknown-key-name",
        "bad-tenant-path",
        "unknown-field",
        "unknown-kind",
        "key-without-material",
        "ssh-line-without-identity",
        "ssh-key-not-base64",
        "missing-gpg-file",
        "forge-without-committers",
    ],
)
def test_a_bad_access_table_names_the_field(
    tmp_path: Path, table: dict[str, object], message: str
) -> None:
    """Every configuration mistake is an AccessError naming the file and the field path."""
    with pytest.raises(access.AccessError) as caught:
        access.parse_access(table, base_dir=tmp_path, source="patchctl.toml")
    assert str(caught.value).startswith("patchctl.toml: "), str(caught.value)
    assert message in str(caught.value)


# --- judging a real history ------------------------------------------------------------------


def signed_policy(ssh_keys: dict[str, SshKey]) -> AccessPolicy:
    return access.parse_access(
        {
            "keys": [{"name": "alice", "ssh": ssh_keys["alice"].allowed_signers_line}],
            "tenants": {
                "acme": {"approvers": ["*@acme.example"], "require-signed": True, "keys": ["alice"]}
            },
            "forges": [{"name": "github", "committers": ["noreply@github.com"]}],
        },
        base_dir=Path(),
    )


def judged_walk(
    repo: History, policy: AccessPolicy
) -> tuple[history.HistoryWalk, tuple[history.AuditEvent, ...]]:
    with policy.verifier() as verifier:
        walked = history.walk(repo.repo, "main", verifier=verifier)
    return walked, access.judge_events(walked.events, policy)


def approval_names(state: object) -> list[str]:
    return sorted(a.name for a in state.approvals)  # type: ignore[attr-defined]


def test_unsigned_and_unauthorized_approvals_are_rejected_and_kept_from_the_planner(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """Alice's signed grant applies; Mallory's signed edit and Bob's unsigned grant do not, and
    the approvals they touched leave the DesiredState until Alice signs them again."""
    policy = signed_policy(ssh_keys)
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    granted = git_history.commit("grant", key=ssh_keys["alice"])
    git_history.write(OPENSSL, approval("openssl", "USN-1-1, USN-6-6"))
    widened = git_history.commit("widen", author=MALLORY, key=ssh_keys["mallory"])
    git_history.write("policies/approvals/kernel.yaml", approval("kernel", "USN-2-1"))
    unsigned = git_history.commit("grant kernel", author=BOB)

    walked, events = judged_walk(git_history, policy)
    judged = [
        (str(e.type), e.commit.sha, e.verdict.applied if e.verdict else None) for e in events[3:]
    ]  # type: ignore[union-attr]

    assert [
        ("ApprovalGranted", granted, True),
        ("ApprovalChanged", widened, False),
        ("ApprovalRejected", widened, False),
        ("ApprovalGranted", unsigned, False),
        ("ApprovalRejected", unsigned, False),
    ] == judged
    rejected = [e for e in events if e.type is AuditEventType.APPROVAL_REJECTED]
    assert [
        f"commit {widened[:12]} is unknown-key; acme/retail requires commits signed by a trusted key",
        f"commit {unsigned[:12]} is unsigned; acme/retail requires commits signed by a trusted key",
    ] == [e.verdict.reason for e in rejected]  # type: ignore[union-attr]
    assert (["USN-1-1", "USN-6-6"], OPENSSL) == (
        rejected[0].after["spec"]["patches"],
        rejected[0].path,
    )  # type: ignore[index]

    state = walked.state()
    assert state is not None
    assert ["kernel", "openssl"] == approval_names(state)
    assert [] == approval_names(access.filter_rejected(state, events))

    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("back to what was approved", key=ssh_keys["alice"])
    walked, events = judged_walk(git_history, policy)
    state = walked.state()
    assert state is not None
    assert ["openssl"] == approval_names(access.filter_rejected(state, events))


def test_a_forge_merge_is_judged_by_the_pull_request_author(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """GitHub merges Bob's branch (committer noreply@github.com): Bob may approve for acme/retail."""
    policy = dataclasses.replace(
        signed_policy(ssh_keys),
        tenants={
            "acme/retail": TenantRule(
                "acme/retail", ("bob@acme.example",), require_signed=False, fingerprints=frozenset()
            )
        },
    )
    git_history.seed()
    git_history.git("checkout", "-q", "-b", "bob/openssl")
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("Approve openssl", author=BOB)
    git_history.git("checkout", "-q", "main")
    merge = git_history.merge(
        "bob/openssl", "Merge pull request #12 from acme/bob/openssl", author=MALLORY
    )
    _, events = judged_walk(git_history, policy)
    assert (
        Verdict(
            applied=True,
            reason=f"github merge {merge[:12]} of #12: pull request author bob@acme.example may approve for acme/retail (matches 'bob@acme.example')",
        )
        == events[-1].verdict
    )


def test_judging_again_replaces_earlier_verdicts() -> None:
    """`judge_events` is idempotent: earlier ApprovalRejected events are judged anew, not doubled."""
    event = history.AuditEvent(
        AuditEventType.APPROVAL_GRANTED, "main@sha1:a", facts(MALLORY), change()
    )
    once = access.judge_events([event], POLICY)
    twice = access.judge_events(once, POLICY)
    assert once == twice
    assert ["ApprovalGranted", "ApprovalRejected"] == [str(e.type) for e in twice]
    opened = access.judge_events(once, AccessPolicy.open())
    assert [("ApprovalGranted", True)] == [(str(e.type), e.verdict.applied) for e in opened]  # type: ignore[union-attr]


def test_filtering_keeps_what_no_verdict_mentions_and_drops_unjudged_content(
    git_history: History,
) -> None:
    """An approval with no judged change stays; one whose content no accepted change produced goes."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.write("policies/approvals/kernel.yaml", approval("kernel", "USN-2-1"))
    git_history.commit("grant two", author=CAROL)
    walked = history.walk(git_history.repo, "main")
    state = walked.state()
    assert state is not None
    openssl = next(e for e in walked.events if e.key and e.key.name == "openssl")
    accepted = dataclasses.replace(openssl, verdict=Verdict(applied=True, reason="ok"))
    assert ["kernel", "openssl"] == approval_names(access.filter_rejected(state, [accepted]))
    stale = dataclasses.replace(
        accepted, change=dataclasses.replace(accepted.change, after={"spec": {}})
    )  # type: ignore[type-var]
    assert ["kernel"] == approval_names(access.filter_rejected(state, [stale]))
    assert state is access.filter_rejected(state, [])


def test_pull_request_styles_are_recorded_for_forge_reasons() -> None:
    """A GitLab merge request is named by its project reference in a verdict."""
    commit = facts(
        CAROL,
        committer=Author("GitLab", "gitlab@forge.example"),
        message="Merge branch 'x' into 'main'\n\nSee merge request infra/policies!56",
        merged=CAROL,
    )
    policy = dataclasses.replace(POLICY, forges=(Forge("gitlab", ("gitlab@*",), frozenset()),))
    assert PullRequest(56, PullRequestStyle.GITLAB, "infra/policies") == commit.pull_request
    verdict = access.judge_change(change(), commit, policy)
    assert (
        f"gitlab merge {SHORT} of infra/policies!56: author carol@retail.example may approve for acme/retail (matches 'carol@retail.example')"
        == verdict.reason
    )


def test_a_refused_tenant_change_is_alerted_to_its_partner_only() -> None:
    """The ApprovalRejected alert of a refused change to a Tenant document belongs to the
    partner it defines (`ObjectKey.owner`), as its audit entry does: without a tenant it was
    every tenant's to read, with the partner's name and the committer's address."""
    from controller.core.audit import AuditEvent  # noqa: PLC0415
    from controller.runtime import audit  # noqa: PLC0415

    tenant_change = change(None, kind="Tenant")  # a Tenant named `openssl`
    refused = AuditEvent(
        tenant_change.event,
        "main@sha1:" + "a" * 40,
        facts(),
        tenant_change,
        "inventory/tenants.yaml",
        verdict=Verdict(applied=False, reason="author bob@northwind.example may not approve for *"),
    )
    alert = audit._rejection_alert(refused)  # the alert the trail raises
    assert ("openssl", "ApprovalRejected") == (alert.tenant, alert.kind)
