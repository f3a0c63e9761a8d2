"""A signature verdict is a pure function of the commit, the trusted keys and the rule "judged at
the time it was made" (issue 17, item 6), never of the day the controller first read it.

Real git, gpg and ssh-keygen; keys are made and commits signed at fixed past instants with gpg's
`--faked-system-time`, so a key can expire between the signature and today."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from historyrepos import History, SshKey, approval

from controller.runtime import access, audit
from controller.runtime.access import AccessPolicy
from controller.sources import history, signatures
from controller.sources.signatures import Signature, SignatureStatus, TrustedKeys
from controller.store import open_store

OPENSSL = "policies/approvals/openssl.yaml"
NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
KEY_MADE = "20260101T000000"  # History's clock starts here; commits come an hour apart
SIGNED = "20260101T030000"  # the third commit's time: while the two-day key is valid
FPR = "9932FD502DC4157E211E88444040B7D35AD0D14B"


def status_lines(*lines: str) -> str:
    return "\n".join(f"[GNUPG:] {line}" for line in lines)


EXPIRED = Signature(SignatureStatus.EXPIRED, FPR, FPR, "Gina <gina@acme.example>")
GOOD = Signature(SignatureStatus.GOOD, FPR, FPR, "Gina <gina@acme.example>")
RULE = [
    (
        "key-expired-after-signing",
        EXPIRED,
        status_lines("KEYEXPIRED 1767398400", f"VALIDSIG {FPR} 2026-01-01 1767229200 0 4"),
        GOOD,
    ),
    (
        "key-expired-before-signing",
        EXPIRED,
        status_lines("KEYEXPIRED 1767398400", f"VALIDSIG {FPR} 2026-01-05 1767571200 0 4"),
        EXPIRED,
    ),
    (
        "signed-the-second-it-expired",
        EXPIRED,
        status_lines("KEYEXPIRED 1767398400", f"VALIDSIG {FPR} 2026-01-03 1767398400 0 4"),
        EXPIRED,
    ),
    (
        "subkey-valid-primary-expired-before",
        EXPIRED,
        status_lines(
            "KEYEXPIRED 1767398400",
            "KEYEXPIRED 1767200000",
            f"VALIDSIG {FPR} 2026-01-01 1767229200 0 4",
        ),
        EXPIRED,
    ),
    (
        "signature-expired-since",
        EXPIRED,
        status_lines("EXPSIG 4040B7D35AD0D14B Gina", f"VALIDSIG {FPR} 2026-01-01 1767229200"),
        GOOD,
    ),
    (
        "revoked-key",
        EXPIRED,
        status_lines("REVKEYSIG 4040B7D35AD0D14B Gina", f"VALIDSIG {FPR} 2026-01-01 1767229200"),
        EXPIRED,
    ),
    ("no-valid-signature", EXPIRED, status_lines("KEYEXPIRED 1767398400"), EXPIRED),
    ("not-expired-untouched", GOOD, status_lines("KEYEXPIRED 1"), GOOD),
]


@pytest.mark.parametrize(
    ("signature", "lines", "expected"), [c[1:] for c in RULE], ids=[c[0] for c in RULE]
)
def test_the_rule_judges_an_expired_signature_at_the_time_it_was_made(
    signature: Signature, lines: str, expected: Signature
) -> None:
    """Good when made before every reported key expiry; revoked or later stays as it was."""
    assert expected == signatures.judge_at_signing_time(signature, lines)


class Gpg:
    """A gpg home for one test, run at a fixed instant when asked."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700)

    def __call__(self, *args: str, at: str | None = None, data: str | None = None) -> str:
        faked = ["--faked-system-time", f"{at}!"] if at else []
        return subprocess.run(
            [
                "gpg",
                "--batch",
                "--homedir",
                str(self.home),
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
                *faked,
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
            input=data,
        ).stdout

    def new_key(self, uid: str, *, expires: str) -> str:
        self("--quick-gen-key", uid, "ed25519", "sign", expires, at=KEY_MADE)
        return next(
            line.split(":")[9]
            for line in self("--with-colons", "--list-keys").splitlines()
            if line.startswith("fpr:")
        )

    def public(self, fingerprint: str) -> str:
        return self("--armor", "--export", fingerprint)

    def revoke(self, fingerprint: str) -> None:
        """Import the revocation certificate gpg stored when it made the key."""
        stored = (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
        self("--import", data=stored.replace(":-----BEGIN", "-----BEGIN"))

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            check=False,
            capture_output=True,
        )


@pytest.fixture
def gpg(tmp_path: Path) -> Iterator[Gpg]:
    home = Gpg(tmp_path / "gnupg")
    yield home
    home.close()


def gpg_commit(repo: History, gpg: Gpg, fingerprint: str, message: str, *, at: str) -> str:
    """Commit everything, signed by `fingerprint` with gpg's clock set to `at`."""
    wrapper = gpg.home.parent / "gpg-at"
    wrapper.write_text(f'#!/bin/sh\nexec gpg --faked-system-time {at}! "$@"\n')
    wrapper.chmod(0o755)
    repo.git("add", "--all")
    repo.clock += 3600
    repo.git(
        "-c",
        f"gpg.program={wrapper}",
        "-c",
        f"user.signingkey={fingerprint}",
        "commit",
        "-S",
        "-q",
        "-m",
        message,
        env={"GNUPGHOME": str(gpg.home)},
    )
    return repo.head()


def test_a_gpg_key_that_expired_after_signing_still_vouches_for_the_commit(
    git_history: History, gpg: Gpg
) -> None:
    """git says `expired key` today; judged when it was signed, the signature is good."""
    fingerprint = gpg.new_key("Gina Signer <gina@acme.example>", expires="2d")
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("unsigned step")
    git_history.write(OPENSSL, approval("openssl", "USN-1-2"))
    sha = gpg_commit(git_history, gpg, fingerprint, "grant openssl", at=SIGNED)
    trusted = TrustedKeys(gpg_public_keys=(gpg.public(fingerprint),))
    with signatures.Verifier(trusted) as verifier:
        today = git_history.git(
            *verifier.git_options(), "log", "-1", "--format=%G?", env=verifier.environment()
        )
        verified = verifier.verify(git_history.repo, [sha])[sha]
        walked = history.walk(git_history.repo, "main", verifier=verifier)
    assert ("Y", SignatureStatus.GOOD) == (today, verified.status)
    assert [SignatureStatus.GOOD] == [
        e.commit.signature.status for e in walked.events if e.commit and e.commit.sha == sha
    ]


def test_an_ssh_key_is_judged_at_the_commit_date(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """An allowed-signers line valid until a day in the past is good for commits before it."""
    alice = ssh_keys["alice"]
    git_history.seed()  # 2026-01-01T01:00Z
    before = git_history.commit("before the key's end", key=alice)
    git_history.clock += 3 * 86400
    after = git_history.commit("after the key's end", key=alice)
    line = f'{alice.email} valid-before="20260102" {alice.public_line}'
    with signatures.Verifier(TrustedKeys(ssh_allowed_signers=(line,))) as verifier:
        found = verifier.verify(git_history.repo, [before, after])
    assert (SignatureStatus.GOOD, SignatureStatus.UNKNOWN_KEY) == (
        found[before].status,
        found[after].status,
    )


def signed_by(armored: str) -> AccessPolicy:
    return access.parse_access(
        {
            "keys": [{"name": "gina", "gpg": armored}],
            "tenants": {
                "acme": {"approvers": ["*@acme.example"], "require-signed": True, "keys": ["gina"]}
            },
        },
        base_dir=Path(),
    )


def test_a_revoked_key_gives_the_same_verdict_to_an_old_store_and_a_fresh_one(
    git_history: History, gpg: Gpg, tmp_path: Path
) -> None:
    """A store that applied the approval before the key was revoked rejects it once the
    configuration carries the revocation, exactly as a store reading the branch for the first
    time does."""
    fingerprint = gpg.new_key("Gina Signer <gina@acme.example>", expires="never")
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    sha = gpg_commit(git_history, gpg, fingerprint, "grant openssl", at=SIGNED)
    valid = signed_by(gpg.public(fingerprint))
    gpg.revoke(fingerprint)
    revoked = signed_by(gpg.public(fingerprint))
    assert valid.trusted.digest() != revoked.trusted.digest()

    def verdicts(store_name: str, *policies: AccessPolicy) -> list[tuple[bool, str, int]]:
        found = []
        store = open_store(f"sqlite:///{tmp_path / store_name}")
        try:
            for policy in policies:
                trail = audit.AuditTrail(
                    store=store,
                    repo=str(git_history.path),
                    branch="main",
                    state_dir=tmp_path / "state",
                    access=policy,
                )
                synced = trail.sync(now=NOW)
                (event,) = synced.latest
                assert event.verdict is not None
                found.append((event.verdict.applied, event.verdict.reason, len(synced.rejected)))
        finally:
            store.close()
        return found

    old = verdicts("old.db", valid, revoked, revoked)
    fresh = verdicts("fresh.db", revoked)
    applied = "signer gina@acme.example may approve for acme/retail (matches '*@acme.example')"
    rejected = f"commit {sha[:12]} is revoked; acme/retail requires commits signed by a trusted key"
    assert [(True, applied, 0), (False, rejected, 1), (False, rejected, 0)] == old
    assert [(False, rejected, 1)] == fresh
