"""Commit signatures (SSH and GPG), verified by git itself against keys the server trusts.

The trusted keys come from the controller's own configuration (`controller.runtime.access`),
never from the policy repository. A `Verifier` writes them where git and gpg look for them:
an allowed-signers file for SSH signatures (`gpg.ssh.allowedSignersFile`) and a private,
throw-away GNUPGHOME holding only the trusted GPG public keys (with `trust-model always`: a key
is trusted because the configuration lists it, not through the web of trust). The user's own
keyring and allowed-signers file are never consulted.

Git reports a signature with the `%G?`, `%GF`, `%GP` and `%GS` placeholders; `SIGNATURE_FORMAT`
is the fragment the history walker adds to its `git log` format so a whole branch is verified
in the same pass that reads it.

A verdict is a pure function of the commit, the trusted keys and one rule, never of the day
the controller happens to read the commit (`docs/audit.md`, "When a signature is judged"): a
signature is judged at the time it was made, against the key's validity then. SSH: git already
gives ssh-keygen the commit's committer date as the verification time, so an allowed-signers
line's `valid-after`/`valid-before` apply at that date. GPG: gpg judges expiry against the
clock, so a signature git reports as made by an expired key (or as expired itself) is judged
again from gpg's status lines (`judge_at_signing_time`): good when it was made before the key
expired. A revoked key vouches for nothing, whenever it signed: revocation says the key may be
in other hands, and such hands can date a signature as they like.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import git

from controller import errors
from controller.core.access import TrustedKeys
from controller.core.commits import UNSIGNED, Signature, SignatureStatus
from controller.sources import pipes

# The signature values and the trusted keys are pure values of the core (`controller.core`);
# they are exported here too, where git verifies them.
__all__ = [
    "SIGNATURE_FIELDS",
    "SIGNATURE_FORMAT",
    "SSH_KEY_TYPE",
    "UNSIGNED",
    "Signature",
    "SignatureError",
    "SignatureStatus",
    "TrustedKeys",
    "Verifier",
    "git_with_input",
    "gpg_fingerprints",
    "judge_at_signing_time",
    "parse_signature",
    "ssh_fingerprint",
    "ssh_principals",
]

# The fields git prints for a signature, NUL-separated: status, key fingerprint, primary key
# fingerprint (GPG subkeys), signer (SSH principal or GPG user id).
SIGNATURE_FORMAT = "%G?%x00%GF%x00%GP%x00%GS"
SIGNATURE_FIELDS = 4
SSH_KEY_TYPE = re.compile(r"^(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)")


class SignatureError(errors.ConfigurationError):
    """A trusted key cannot be read or installed; the message says which and why."""


_GIT_CODES = {
    "G": SignatureStatus.GOOD,
    "B": SignatureStatus.BAD,
    "U": SignatureStatus.UNKNOWN_KEY,  # SSH: valid, but the key is not in allowed signers
    "E": SignatureStatus.UNKNOWN_KEY,  # cannot be checked: usually the key is missing
    "X": SignatureStatus.EXPIRED,
    "Y": SignatureStatus.EXPIRED,
    "R": SignatureStatus.REVOKED,
    "N": SignatureStatus.UNSIGNED,
}


def parse_signature(fields: Sequence[str]) -> Signature:
    """`SIGNATURE_FORMAT`'s fields, as printed by git, into a Signature."""
    code, key, primary, signer = (*fields, "", "", "", "")[:SIGNATURE_FIELDS]
    status = _GIT_CODES.get(code.strip(), SignatureStatus.UNKNOWN_KEY)
    if status is SignatureStatus.UNSIGNED:
        return UNSIGNED
    return Signature(status, key or None, primary or None, signer or None)


def judge_at_signing_time(signature: Signature, status_lines: str) -> Signature:
    """An `expired` GPG signature judged at the time it was made. Purely computational.

    `status_lines` are gpg's machine-readable `[GNUPG:]` lines for the signature (what
    `git verify-commit --raw` prints). Good when gpg found the signature valid (`VALIDSIG`)
    and it was made before every key gpg reports expired (`KEYEXPIRED <time>`) had expired; a
    signature's own expiry (`EXPSIG`) does not count against it, since it held when it was
    made. Anything else (no `VALIDSIG`, a revoked key, a signature made after the expiry) keeps
    the signature as it was.
    """
    if signature.status is not SignatureStatus.EXPIRED:
        return signature
    made: int | None = None
    expiries: list[int] = []
    revoked = False
    for line in status_lines.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "[GNUPG:]":
            continue
        keyword, args = parts[1], parts[2:]
        if keyword == "VALIDSIG" and len(args) >= 3 and args[2].isdigit():
            made = int(args[2])
        elif keyword == "KEYEXPIRED" and args and args[0].isdigit():
            expiries.append(int(args[0]))
        elif keyword in {"REVKEYSIG", "KEYREVOKED"}:
            revoked = True
    if made is None or revoked or any(made >= expiry for expiry in expiries):
        return signature
    return dataclasses.replace(signature, status=SignatureStatus.GOOD)


# --- trusted keys ----------------------------------------------------------------------------


def ssh_fingerprint(line: str) -> str:
    """The `SHA256:...` fingerprint (as `ssh-keygen -l` and git print it) of an SSH key.

    `line` is an allowed-signers line (`principals [options] type key [comment]`) or a public
    key line (`type key [comment]`).
    """
    tokens = line.split()
    for index, token in enumerate(tokens[:-1]):
        if SSH_KEY_TYPE.match(token):
            try:
                blob = base64.b64decode(tokens[index + 1], validate=True)
            except (binascii.Error, ValueError):
                break
            digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
            return "SHA256:" + digest.rstrip("=")
    raise SignatureError(f"not an SSH public key or allowed-signers line: {line[:60]!r}")


def ssh_principals(line: str) -> tuple[str, ...]:
    """The principals (identities) an allowed-signers line names: its first field."""
    tokens = line.split()
    if len(tokens) < 3 or SSH_KEY_TYPE.match(tokens[0]):
        raise SignatureError(
            "an allowed-signers line starts with the signer's identity, then the key: "
            f"'alice@example.com ssh-ed25519 AAAA...', got {line[:60]!r}"
        )
    return tuple(p.strip('"') for p in tokens[0].split(","))


def gpg_fingerprints(armored: str) -> tuple[str, ...]:
    """The fingerprints (primary keys and subkeys) of armored GPG public keys, read with gpg."""
    with tempfile.TemporaryDirectory(prefix="patchctl-gpg-") as home:
        Path(home).chmod(0o700)
        result = _run_gpg(
            home, "--with-colons", "--import-options", "show-only", "--import", data=armored
        )
    found = tuple(line.split(":")[9] for line in result.splitlines() if line.startswith("fpr:"))
    if not found:
        raise SignatureError("no GPG public key found in the given text")
    return found


def _run_gpg(home: str, *args: str, data: str | None = None) -> str:
    program = shutil.which("gpg")
    if program is None:
        raise SignatureError("gpg is not installed, but GPG keys are configured")
    completed = subprocess.run(  # noqa: S603 - fixed program, arguments built here
        [program, "--batch", "--no-tty", "--homedir", home, *args],
        input=data,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SignatureError(f"gpg failed: {completed.stderr.strip()[:300]}")
    return completed.stdout


# --- verification ----------------------------------------------------------------------------


def git_with_input(
    repo: git.Repo, args: Sequence[str], data: bytes, *, env: Mapping[str, str] | None = None
) -> bytes:
    """Run `git ARGS` in the repository with `data` on its standard input; its output.

    GitCommandError when git fails. The input is written whole into a pipe widened to hold it
    and the output read in pieces of up to a widened pipe's size (`pipes`), not the 32 KiB of
    `Popen.communicate`: the reading thread of an audit walk waited up to 5 ms for the GIL
    after each piece. `communicate` still serves an input too large for the pipe.
    """
    with tempfile.TemporaryFile() as errors:
        popen = pipes.start_git(repo, args, env=env, stderr=errors, stdin=subprocess.PIPE)
        with popen:
            try:
                output = _exchange(popen, data)
            except BaseException:  # interrupted: git does not outlive the call
                popen.kill()
                raise
        if popen.returncode != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise git.GitCommandError(["git", *args], popen.returncode, message)
    return output


def _exchange(popen: subprocess.Popen[bytes], data: bytes) -> bytes:
    """`data` to the process, its whole output back, and its exit awaited."""
    stdin, stdout = popen.stdin, popen.stdout
    if stdin is None or stdout is None:  # pragma: no cover - both are pipes
        raise SignatureError("git did not start")
    if len(data) > pipes.widen(stdin.fileno()):
        return popen.communicate(data)[0]
    with contextlib.suppress(BrokenPipeError):  # git ended early: its status says why
        stdin.write(data)
    with contextlib.suppress(BrokenPipeError):
        stdin.close()
    output = stdout.read()
    popen.wait()
    return output


@dataclass
class Verifier:
    """Trusted keys installed where git looks for them, for as long as the verifier is open.

    Use as a context manager (or call `close`): it owns a temporary directory. An empty
    verifier still answers: unsigned commits are `unsigned`, signed ones `unknown-key`.
    """

    trusted: TrustedKeys = field(default_factory=TrustedKeys)
    _home: Path = field(init=False)

    def __post_init__(self) -> None:
        self._home = Path(tempfile.mkdtemp(prefix="patchctl-verify-"))
        self._home.chmod(0o700)
        signers = self._home / "allowed_signers"
        signers.write_text(
            "".join(f"{line.strip()}\n" for line in self.trusted.ssh_allowed_signers)
        )
        gnupg = self._home / "gnupg"
        gnupg.mkdir(mode=0o700)
        (gnupg / "gpg.conf").write_text("trust-model always\nno-autostart\n")
        for armored in self.trusted.gpg_public_keys:
            try:
                _run_gpg(str(gnupg), "--import", data=armored)
            except SignatureError:
                self.close()
                raise

    @property
    def allowed_signers_file(self) -> Path:
        return self._home / "allowed_signers"

    @property
    def gnupg_home(self) -> Path:
        return self._home / "gnupg"

    def git_options(self) -> list[str]:
        """`-c` options for a git command that verifies signatures with these keys only."""
        return [
            "-c",
            f"gpg.ssh.allowedSignersFile={self.allowed_signers_file}",
            "-c",
            "gpg.program=gpg",
        ]

    def environment(self) -> Mapping[str, str]:
        return {"GNUPGHOME": str(self.gnupg_home)}

    def verify(self, repo: git.Repo, shas: Iterable[str]) -> dict[str, Signature]:
        """The signature of each commit, checked by git against the trusted keys."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        stdout = git_with_input(
            repo,
            [
                *self.git_options(),
                "log",
                "--no-walk=unsorted",
                "--ignore-missing",  # a commit gone from the repository is left out
                "--stdin",
                f"--format=%H%x00{SIGNATURE_FORMAT}%x00",
            ],
            "\n".join(wanted).encode() + b"\n",
            env=self.environment(),
        )
        fields = stdout.decode("utf-8", "replace").split("\0")
        found: dict[str, Signature] = {}
        for start in range(0, len(fields) - SIGNATURE_FIELDS, SIGNATURE_FIELDS + 1):
            sha = fields[start].strip()
            found[sha] = parse_signature(fields[start + 1 : start + 1 + SIGNATURE_FIELDS])
        return {sha: self.at_signing_time(repo, sha, found[sha]) for sha in found}

    def at_signing_time(self, repo: git.Repo, sha: str, signature: Signature) -> Signature:
        """`signature` judged at the time it was made (`judge_at_signing_time`): for an
        `expired` one, gpg's status lines are read once more with `git verify-commit --raw`."""
        if signature.status is not SignatureStatus.EXPIRED:
            return signature
        completed = subprocess.run(  # noqa: S603 - git, with arguments built here
            [
                git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git",
                f"--git-dir={repo.git_dir}",
                *self.git_options(),
                "verify-commit",
                "--raw",
                sha,
            ],
            capture_output=True,
            env={**os.environ, "LC_ALL": "C", **self.environment()},
            check=False,  # non-zero for any signature that is not plainly good
        )
        return judge_at_signing_time(signature, completed.stderr.decode("utf-8", "replace"))

    def close(self) -> None:
        if self.trusted.gpg_public_keys and shutil.which("gpgconf"):
            subprocess.run(  # noqa: S603 - fixed program; stops an agent gpg may have started
                [str(shutil.which("gpgconf")), "--homedir", str(self.gnupg_home), "--kill", "all"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
