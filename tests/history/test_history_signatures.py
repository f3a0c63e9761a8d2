"""Commit signatures verified by git against the trusted keys only: SSH and GPG, good, unknown,
unsigned and tampered."""

from __future__ import annotations

import subprocess

import pytest
from historyrepos import BOB, GpgKey, History, SshKey, approval

from controller.sources import history, signatures
from controller.sources.signatures import Signature, SignatureStatus, TrustedKeys

OPENSSL = "policies/approvals/openssl.yaml"


def verify(repo: History, sha: str, trusted: TrustedKeys) -> Signature:
    with signatures.Verifier(trusted) as verifier:
        return verifier.verify(repo.repo, [sha])[sha]


def test_a_commit_signed_by_a_trusted_ssh_key_is_good(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """git reports the key's fingerprint and the principal of its allowed-signers line."""
    alice = ssh_keys["alice"]
    git_history.seed()
    sha = git_history.commit("signed", key=alice)
    found = verify(git_history, sha, TrustedKeys(ssh_allowed_signers=(alice.allowed_signers_line,)))
    assert Signature(SignatureStatus.GOOD, alice.fingerprint(), None, alice.email) == found
    assert alice.email == found.signer_email


def test_a_commit_signed_by_an_untrusted_key_is_unknown(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """A valid signature by a key the server does not list is `unknown-key`, with its fingerprint."""
    git_history.seed()
    sha = git_history.commit("signed by mallory", key=ssh_keys["mallory"])
    found = verify(
        git_history, sha, TrustedKeys(ssh_allowed_signers=(ssh_keys["alice"].allowed_signers_line,))
    )
    assert (SignatureStatus.UNKNOWN_KEY, ssh_keys["mallory"].fingerprint(), None) == (
        found.status,
        found.key,
        found.signer,
    )


def test_an_unsigned_commit_is_unsigned(git_history: History) -> None:
    """No signature at all is `unsigned`, even with an empty set of trusted keys."""
    sha = git_history.seed()
    assert signatures.UNSIGNED == verify(git_history, sha, TrustedKeys())


def test_a_commit_altered_after_signing_is_bad(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """Changing a signed commit's message keeps the signature but breaks it: `bad`."""
    alice = ssh_keys["alice"]
    git_history.seed()
    sha = git_history.commit("approve USN-1-1", key=alice)
    raw = git_history.git("cat-file", "commit", sha)
    forged = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=git_history.path,
        input=raw.replace("approve USN-1-1", "approve USN-6-6") + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    found = verify(
        git_history, forged, TrustedKeys(ssh_allowed_signers=(alice.allowed_signers_line,))
    )
    assert SignatureStatus.BAD == found.status


def test_the_walk_records_each_commit_s_signature(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """Signatures are verified in the same `git log` pass that reads the history."""
    alice = ssh_keys["alice"]
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("signed grant", key=alice)
    git_history.write(OPENSSL, approval("openssl", "USN-2-1"))
    git_history.commit("unsigned change", author=BOB)
    trusted = TrustedKeys(ssh_allowed_signers=(alice.allowed_signers_line,))
    with signatures.Verifier(trusted) as verifier:
        walked = history.walk(git_history.repo, "main", verifier=verifier)
    assert (
        [("good", alice.email), ("unsigned", None)]
        == [
            (str(e.commit.signature.status), e.commit.signature.signer_email)  # type: ignore[union-attr]
            for e in walked.events[3:]
        ]
    )


def test_without_trusted_keys_a_signed_commit_is_unknown_key(
    git_history: History, ssh_keys: dict[str, SshKey]
) -> None:
    """The default walk trusts nobody: a signed commit is `unknown-key`, never `good`."""
    git_history.write(
        "inventory/tenants.yaml", "apiVersion: patchctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"
    )
    git_history.commit("signed", key=ssh_keys["alice"])
    facts = history.walk(git_history.repo, "main").events[0].commit
    assert facts is not None
    assert (SignatureStatus.UNKNOWN_KEY, ssh_keys["alice"].fingerprint()) == (
        facts.signature.status,
        facts.signature.key,
    )


@pytest.mark.parametrize(
    "form",
    ["allowed-signers", "public-key", "allowed-signers-with-options"],
)
def test_ssh_fingerprints_match_ssh_keygen(ssh_keys: dict[str, SshKey], form: str) -> None:
    """The fingerprint computed from a configured line is the one ssh-keygen and git print."""
    key = ssh_keys["bob"]
    line = {
        "allowed-signers": key.allowed_signers_line,
        "public-key": key.public_line,
        "allowed-signers-with-options": f'{key.email} namespaces="git" {key.public_line}',
    }[form]
    assert key.fingerprint() == signatures.ssh_fingerprint(line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdV", "starts with the signer's identity"),
        ("alice@example.com", "starts with the signer's identity"),
    ],
    ids=["key-without-principal", "principal-without-key"],
)
def test_allowed_signers_lines_need_an_identity_and_a_key(line: str, message: str) -> None:
    """A line without a principal, or without a key, is refused with the expected shape."""
    with pytest.raises(signatures.SignatureError, match=message):
        signatures.ssh_principals(line)


def test_a_gpg_signed_commit_is_verified_against_the_configured_key(
    git_history: History, gpg_key: GpgKey
) -> None:
    """A GPG signature by a configured public key is good and names the key's user id."""
    git_history.seed()
    sha = git_history.commit("gpg signed", key=gpg_key)
    found = verify(git_history, sha, TrustedKeys(gpg_public_keys=(gpg_key.armored,)))
    assert (SignatureStatus.GOOD, gpg_key.fingerprint, gpg_key.uid, "gina@acme.example") == (
        found.status,
        found.key,
        found.signer,
        found.signer_email,
    )
    assert gpg_key.fingerprint in signatures.gpg_fingerprints(gpg_key.armored)


def test_a_gpg_signature_by_an_unknown_key_is_not_good(
    git_history: History, gpg_key: GpgKey
) -> None:
    """Without the public key in the trusted set, git cannot check the signature: `unknown-key`."""
    git_history.seed()
    sha = git_history.commit("gpg signed", key=gpg_key)
    assert SignatureStatus.UNKNOWN_KEY == verify(git_history, sha, TrustedKeys()).status
