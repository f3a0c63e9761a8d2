"""What a channel sends: one event, or a digest of several when a channel's rate limit is hit.

Purely computational: the texts every channel renders a message with.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.kinds.notifications import AlertSeverity
from controller.notify.events import Attachment, Event

DIGEST_LINES = 50  # a digest lists this many events and counts the rest


@dataclass(frozen=True, slots=True)
class Message:
    """One message to send: a single event, or a digest of the events held back."""

    events: tuple[Event, ...]
    digest: bool = False

    @property
    def severity(self) -> AlertSeverity:
        """The most severe event's severity."""
        return max((e.severity for e in self.events), key=lambda s: s.rank)

    @property
    def subject(self) -> str:
        if not self.digest:
            return self.events[0].title
        return f"{len(self.events)} events, up to {self.severity.value} (digest)"

    @property
    def text(self) -> str:
        """Plain text (Markdown for the parts that come from reports)."""
        if not self.digest:
            event = self.events[0]
            return event.title + (f"\n\n{event.body}" if event.body else "")
        lines = [
            f"patchctl: {len(self.events)} events were held back by the channel's rate limit:",
            "",
        ]
        lines += [f"- {e.title}" for e in self.events[:DIGEST_LINES]]
        if len(self.events) > DIGEST_LINES:
            lines.append(f"- … and {len(self.events) - DIGEST_LINES} more")
        return "\n".join(lines)

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        seen: dict[str, Attachment] = {}
        for event in self.events:
            for attachment in event.attachments:
                seen.setdefault(attachment.filename, attachment)
        return tuple(seen.values())

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.events)
