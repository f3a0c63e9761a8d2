"""Ids and small keys: what names a device, a job, a patch or a tenant, and the two composite keys
that are stored as formatted text.

Purely computational, no side effects. The `NewType` ids cost nothing at run time; they let the
type checker tell a device id from a job id where both are `str` (`DeviceView.id`, `JobSpec.id`).

The keys keep their formatted text as the stored and wire value (the `jobs.window_key` column,
the `alerts.dedupe_key` column, the API's `windowKey`): build them as values, `format()` them
when writing, `parse()` the text when reading, and never split the text by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from controller.kinds.notifications import EventType

__all__ = ["AlertKey", "DeviceId", "JobId", "PatchId", "TenantPath", "WindowOccurrence"]

DeviceId = NewType("DeviceId", str)  # `d-<hex>`, issued at enrolment (docs/agent.md)
JobId = NewType("JobId", str)  # `<kind>-<24 hex>`: `core.jobs.job_id`
PatchId = NewType("PatchId", str)  # a catalogue id: `USN-6500-1`, `KB5034441`, `openssl@3.0.2-0u1`
TenantPath = NewType("TenantPath", str)  # `acme/retail`: a tenant and its parents, `/`-joined


@dataclass(frozen=True, slots=True)
class WindowOccurrence:
    """One occurrence of one PatchWindow: the key installs are planned, deduplicated and
    alerted by. Stored and shown as `<window>@<occurrence>` (`acme/retail/night@2026-11-20T02:00Z`).

    `window` is `tenant/name` (`*/name` for a window of every tenant); `occurrence` is the
    occurrence's start (or a trigger's key) and may hold `:` but never `@` before it.
    """

    window: str
    occurrence: str

    def format(self) -> str:
        """`<window>@<occurrence>`."""
        return f"{self.window}@{self.occurrence}"

    @classmethod
    def parse(cls, text: str | None) -> WindowOccurrence | None:
        """The key written by `format`; None for None, empty text or text without `@`.

        Window names hold no `@`, so the first `@` separates the two parts."""
        window, sep, occurrence = (text or "").partition("@")
        if not sep or not window:
            return None
        return cls(window, occurrence)


_KINDS = frozenset(kind.value for kind in EventType)


@dataclass(frozen=True, slots=True)
class AlertKey:
    """What makes an alert one alert: raised once per key, resolved and reopened by key.
    Stored as `<kind>:<subject>` (`PolicyInvalid:main@sha1:<sha>`,
    `IdentityConflict:<device id>:<machine id>`).

    `subject` is the rest of the key, itself `:`-joined parts (`AlertKey.of`); parts may hold
    `:` (a revision, an instant), so `parse` gives the subject whole, never split.
    """

    kind: EventType
    subject: str

    @classmethod
    def of(cls, kind: EventType, *parts: str) -> AlertKey:
        """The key of `kind` about `parts` (device id, window occurrence, revision, ...)."""
        return cls(kind, ":".join(parts))

    def format(self) -> str:
        """`<kind>:<subject>`: the `dedupe_key` stored with the alert."""
        return f"{self.kind.value}:{self.subject}"

    @classmethod
    def parse(cls, text: str | None) -> AlertKey | None:
        """The key written by `format`; None for text that is not `<known kind>:<subject>`."""
        kind, sep, subject = (text or "").partition(":")
        if not sep or kind not in _KINDS:
            return None
        return cls(EventType(kind), subject)
