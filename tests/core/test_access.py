"""Who may approve (docs/audit.md): the verdict on each approving change, from the commit's
facts and the server's access policy alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.core import access
from controller.core.access import AccessPolicy, Forge, TenantRule, TrustedKeys
from controller.core.audit import AuditEvent
from controller.core.changes import AuditEventType, ChangeAction, ObjectChange, as_json
from controller.core.commits import (
    UNSIGNED,
    CommitFacts,
    Person,
    Signature,
    SignatureStatus,
    Trailer,
)
from controller.kinds import ObjectKey
from controller.testing.fleets import desired

ALICE = Person("Alice Admin", "alice@example.com")
MALLORY = Person("Mallory", "mallory@example.net")
GITHUB = Person("GitHub", "noreply@github.com")
WHEN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
APPROVAL = ObjectKey("Approval", "acme/retail", "kb5034127")


def commit(
    author: Person = ALICE,
    *,
    committer: Person | None = None,
    signature: Signature = UNSIGNED,
    trailers: tuple[Trailer, ...] = (),
) -> CommitFacts:
    return CommitFacts(
        sha="c0ffee" + "0" * 34,
        parents=("a" * 40,),
        author=author,
        committer=committer or author,
        authored_at=WHEN,
        committed_at=WHEN,
        message="approve",
        pull_request=None,
        trailers=trailers,
        signature=signature,
    )


def change(action: ChangeAction = ChangeAction.ADDED, key: ObjectKey = APPROVAL) -> ObjectChange:
    return ObjectChange(key, action, AuditEventType.APPROVAL_GRANTED, None, {"spec": {}})


POLICY = AccessPolicy(
    enforced=True,
    tenants={
        "acme": TenantRule("acme", ("*@example.com",), None, frozenset()),
        "acme/retail": TenantRule("acme/retail", ("bob@example.com",), None, frozenset({"K1"})),
    },
    forges=(Forge("github", ("noreply@github.com",), frozenset({"GH"})),),
)
SIGNED_POLICY = replace(POLICY, require_signed=True)
GOOD_BY_K1 = Signature(SignatureStatus.GOOD, key="K1", signer="bob@example.com")
REVIEWED = (Trailer("Reviewed-by", "Alice Admin <alice@example.com>"),)


@pytest.mark.parametrize(
    ("the_change", "the_commit", "policy", "applied", "reason"),
    [
        pytest.param(
            change(),
            commit(MALLORY),
            AccessPolicy.open(),
            True,
            "no access policy is configured",
            id="open-policy",
        ),
        pytest.param(
            change(key=ObjectKey("Baseline", "acme", "win")),
            commit(MALLORY),
            POLICY,
            True,
            "Baseline changes are not access-controlled",
            id="unguarded-kind",
        ),
        pytest.param(
            change(ChangeAction.REMOVED),
            commit(MALLORY),
            POLICY,
            True,
            "a removal only narrows what is approved",
            id="removal",
        ),
        pytest.param(
            change(ChangeAction.EXPIRED),
            None,
            POLICY,
            True,
            "an expiry only narrows what is approved",
            id="expiry",
        ),
        pytest.param(
            change(),
            None,
            POLICY,
            False,
            "restored by a rewrite of the branch history, not by a reviewed commit",
            id="no-commit",
        ),
        pytest.param(
            change(),
            commit(signature=Signature(SignatureStatus.BAD)),
            POLICY,
            False,
            "commit c0ffee000000 has a bad signature: it was altered after signing",
            id="bad-signature",
        ),
        pytest.param(
            change(key=ObjectKey("Approval", "globex", "x")),
            commit(),
            POLICY,
            False,
            "the access policy names no approvers for globex",
            id="no-approvers",
        ),
        pytest.param(
            change(),
            commit(),
            POLICY,
            True,
            "author alice@example.com may approve for acme/retail (matches '*@example.com')",
            id="partner-approver",
        ),
        pytest.param(
            change(),
            commit(MALLORY),
            POLICY,
            False,
            "author mallory@example.net of commit c0ffee000000 may not approve for acme/retail",
            id="stranger",
        ),
        pytest.param(
            change(),
            commit(MALLORY, signature=GOOD_BY_K1),
            POLICY,
            True,
            "signer bob@example.com may approve for acme/retail (matches 'bob@example.com')",
            id="trusted-signer-over-author",
        ),
        pytest.param(
            change(),
            commit(),
            SIGNED_POLICY,
            False,
            "commit c0ffee000000 is unsigned; acme/retail requires commits signed by a trusted key",
            id="unsigned-when-required",
        ),
        pytest.param(
            change(),
            commit(signature=Signature(SignatureStatus.GOOD, key="K9")),
            SIGNED_POLICY,
            False,
            "commit c0ffee000000 is signed by key K9, which is not trusted for acme/retail",
            id="untrusted-key",
        ),
        pytest.param(
            change(),
            commit(MALLORY, committer=GITHUB, trailers=REVIEWED),
            POLICY,
            True,
            "github merge c0ffee000000: reviewer alice@example.com may approve for acme/retail (matches '*@example.com')",
            id="forge-reviewer",
        ),
        pytest.param(
            change(),
            commit(
                MALLORY,
                committer=GITHUB,
                trailers=(Trailer("Co-authored-by", "Alice Admin <alice@example.com>"),),
            ),
            POLICY,
            False,
            "github merge c0ffee000000: none of mallory@example.net may approve for acme/retail",
            id="forge-co-author-never-counts",
        ),
        pytest.param(
            change(),
            commit(committer=GITHUB),
            SIGNED_POLICY,
            False,
            "github commit c0ffee000000 is unsigned, not signed by a key of github; acme/retail requires signed commits",
            id="forge-unsigned-when-required",
        ),
    ],
)
def test_each_rule_gives_its_verdict(
    the_change: ObjectChange,
    the_commit: CommitFacts | None,
    policy: AccessPolicy,
    applied: bool,
    reason: str,
) -> None:
    """The rules of `judge_change`, in their order, each with the reason a person reads."""
    verdict = access.judge_change(the_change, the_commit, policy)
    assert (applied, reason) == (verdict.applied, verdict.reason)


def test_rules_merge_the_tenant_its_partner_and_every_tenant() -> None:
    """Approvers and keys add up along the lineage; the nearest `require_signed` wins."""
    policy = replace(
        POLICY,
        tenants={
            **POLICY.tenants,
            "*": TenantRule(
                "*", ("root@example.org",), require_signed=True, fingerprints=frozenset({"K0"})
            ),
            "acme": TenantRule(
                "acme", ("*@example.com",), require_signed=False, fingerprints=frozenset()
            ),
        },
    )
    rules = policy.rules_for("acme/retail")
    assert (
        ("bob@example.com", "*@example.com", "root@example.org"),
        False,
        frozenset({"K0", "K1"}),
        "objects of every tenant",
    ) == (rules.approvers, rules.require_signed, rules.fingerprints, policy.rules_for(None).scope)


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("Alice@Example.com ", "*@example.com"),
        ("bob@example.com", "bob@example.com"),
        ("mallory@example.net", None),
    ],
)
def test_approver_patterns_are_case_insensitive_globs(email: str, expected: str | None) -> None:
    """The first pattern the address matches, compared lower-case."""
    assert expected == access.matching_pattern(email, ("bob@example.com", "*@example.com"))


def test_trusted_keys_have_a_digest_that_follows_the_set() -> None:
    """An empty set is false; adding a key changes the digest."""
    one = TrustedKeys(ssh_allowed_signers=("bob@example.com ssh-ed25519 AAAA",))
    two = replace(one, gpg_public_keys=("-----BEGIN PGP PUBLIC KEY BLOCK-----",))
    assert (False, True, 32) == (bool(TrustedKeys()), bool(one), len(one.digest()))
    assert one.digest() != two.digest()


def event(the_change: ObjectChange, the_commit: CommitFacts) -> AuditEvent:
    return AuditEvent(
        type=the_change.event,
        revision="main@sha1:" + "c" * 40,
        commit=the_commit,
        change=the_change,
    )


def test_judging_adds_a_rejection_after_each_change_not_applied_and_is_idempotent() -> None:
    """A stranger's approval is followed by `ApprovalRejected`; judging again changes nothing."""
    events = (event(change(), commit()), event(change(), commit(MALLORY)))
    judged = access.judge_events(events, POLICY)
    assert [
        (AuditEventType.APPROVAL_GRANTED, True),
        (AuditEventType.APPROVAL_GRANTED, False),
        (AuditEventType.APPROVAL_REJECTED, False),
    ] == [(e.type, e.verdict.applied if e.verdict else None) for e in judged]
    assert judged == access.judge_events(judged, POLICY)


APPROVAL_YAML = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: kb-sec, tenant: acme}
spec:
  targets: {groups: [windows]}
  patches: [KB-SEC]
  reason: CAB-1 approved it
"""


def test_only_accepted_approvals_reach_the_planner() -> None:
    """An approval whose last change was rejected, or whose content no verdict covers, goes."""
    state = desired(APPROVAL_YAML)
    (approval,) = state.approvals
    content: Any = as_json(approval)
    added = ObjectChange(
        approval.key, ChangeAction.ADDED, AuditEventType.APPROVAL_GRANTED, None, content
    )
    accepted = access.judge_events([event(added, commit())], POLICY)
    rejected = access.judge_events([event(added, commit(MALLORY))], POLICY)
    other = replace(added, after={**content, "spec": {}})
    stale = access.judge_events([event(other, commit())], POLICY)
    assert (1, 0, 0) == tuple(
        len(access.filter_rejected(state, judged).approvals)
        for judged in (accepted, rejected, stale)
    )
