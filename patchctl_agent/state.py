"""The agent's state directory: enrolment, the device token, job journals and the event outbox.

Every file is written whole (temporary file, fsync, rename) with mode 0600, so a crash or a
reboot never leaves half a file, and only root (or the service user) can read the token.

Layout (`/var/lib/patchctl-agent` by default, `%ProgramData%\\patchctl-agent` on Windows):

    enrolment.json        server URL, device id, hostname, CA file, poll interval
    token                 the device token (never printed, never logged)
    machine-id            an identity the agent made up when the OS has none
    jobs/<job id>.json    the journal of a job: phase, results, output, next event number
    outbox/<n>.json       events not yet delivered, sent in order of n
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patchctl_agent import wire

FILE_MODE = 0o600
DIR_MODE = 0o700


def default_state_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "patchctl-agent"
    return Path("/var/lib/patchctl-agent")


class StateError(Exception):
    """The state directory is missing, unreadable or damaged (a usage or I/O error)."""


def _safe_name(value: str) -> str:
    """A job id as a file name (ids are hex hashes; anything else is escaped)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", value)[:200]


class State:
    """The files under one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- files --------------------------------------------------------------------------

    def ensure(self) -> None:
        for folder in (self.root, self.root / "jobs", self.root / "outbox"):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if sys.platform != "win32":
                os.chmod(folder, DIR_MODE)  # noqa: PTH101 - also when it existed before

    def write_text(self, path: Path, text: str) -> None:
        """`text` into `path` atomically, mode 0600 from the first byte."""
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(str(temporary), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if sys.platform != "win32":
            os.chmod(temporary, FILE_MODE)  # noqa: PTH101 - an older file kept its mode
        temporary.replace(path)

    def write_json(self, path: Path, value: Any) -> None:
        self.write_text(path, wire.dumps(value) + "\n")

    def read_json(self, path: Path) -> Any:
        try:
            return wire.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"{path}: unreadable ({exc})") from exc

    # --- enrolment ----------------------------------------------------------------------

    @property
    def enrolment_path(self) -> Path:
        return self.root / "enrolment.json"

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    def save_enrolment(self, enrolment: dict[str, Any], token: str) -> None:
        self.ensure()
        self.write_text(self.token_path, token)
        self.write_json(self.enrolment_path, enrolment)

    def enrolment(self) -> dict[str, Any] | None:
        found = self.read_json(self.enrolment_path)
        return found if isinstance(found, dict) else None

    def update_enrolment(self, **changes: Any) -> None:
        current = self.enrolment() or {}
        current.update(changes)
        self.write_json(self.enrolment_path, current)

    def token(self) -> str:
        try:
            return self.token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StateError(f"{self.token_path}: no device token ({exc.strerror})") from exc

    def machine_id(self, *, create: bool = True) -> str:
        """The agent's own identity for hosts without one (made once, then kept); without
        `create`, a missing one is the empty string and nothing is written."""
        path = self.root / "machine-id"
        try:
            value = path.read_text().strip()
        except OSError:
            value = ""
        if not create and not re.fullmatch(r"[0-9a-f]{32}", value):
            return ""
        if not re.fullmatch(r"[0-9a-f]{32}", value):
            self.ensure()
            value = os.urandom(16).hex()
            self.write_text(path, value + "\n")
        return value

    # --- job journals -------------------------------------------------------------------

    def journal_path(self, job_id: str) -> Path:
        return self.root / "jobs" / f"{_safe_name(job_id)}.json"

    def journal(self, job_id: str) -> dict[str, Any] | None:
        found = self.read_json(self.journal_path(job_id))
        return found if isinstance(found, dict) else None

    def save_journal(self, journal: dict[str, Any]) -> None:
        self.ensure()
        self.write_json(self.journal_path(str(journal["job"]["id"])), journal)

    def journals(self) -> list[dict[str, Any]]:
        folder = self.root / "jobs"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            journal = self.read_json(path)
            if isinstance(journal, dict) and isinstance(journal.get("job"), dict):
                found.append(journal)
        return found

    def forget_finished(self, keep: int = 50) -> None:
        """Drop the oldest finished journals beyond `keep` (they only serve `status`)."""
        finished = [
            (j.get("finishedAt") or "", self.journal_path(str(j["job"]["id"])))
            for j in self.journals()
            if j.get("phase") == "finished"
        ]
        for _, path in sorted(finished)[:-keep] if len(finished) > keep else []:
            path.unlink()

    # --- outbox -------------------------------------------------------------------------

    def enqueue(self, item: dict[str, Any]) -> None:
        """Queue an event for delivery after every event queued before it."""
        self.ensure()
        numbers = [n for n, _ in self._outbox_files()]
        self.write_json(
            self.root / "outbox" / f"{(max(numbers) + 1 if numbers else 1):010d}.json", item
        )

    def outbox(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Queued events, oldest first."""
        for _, path in self._outbox_files():
            item = self.read_json(path)
            if isinstance(item, dict):
                yield path, item

    def outbox_size(self) -> int:
        return len(self._outbox_files())

    def _outbox_files(self) -> list[tuple[int, Path]]:
        folder = self.root / "outbox"
        if not folder.is_dir():
            return []
        return sorted((int(p.stem), p) for p in folder.glob("*.json") if p.stem.isdigit())
