"""`controller.core.ids`: the window occurrence and alert keys keep their stored text exactly."""

from __future__ import annotations

import pytest

from controller.core.ids import AlertKey, WindowOccurrence
from controller.kinds.notifications import EventType


@pytest.mark.parametrize(
    ("key", "text"),
    [
        pytest.param(
            WindowOccurrence("acme/retail/night", "2026-11-20T02:00Z"),
            "acme/retail/night@2026-11-20T02:00Z",
            id="tenant-window",
        ),
        pytest.param(
            WindowOccurrence("*/weekly", "trigger:t1"), "*/weekly@trigger:t1", id="global"
        ),
    ],
)
def test_window_occurrence_round_trip(key: WindowOccurrence, text: str) -> None:
    """`format` writes the stored `window@occurrence`; `parse` reads it back to the same key."""
    assert (text, key) == (key.format(), WindowOccurrence.parse(text))


@pytest.mark.parametrize("text", [None, "", "no-at-sign", "@2026-11-20T02:00Z"])
def test_window_occurrence_parse_refuses_other_text(text: str | None) -> None:
    """No window key (scans, scripts) or a malformed one parses to None."""
    assert WindowOccurrence.parse(text) is None


@pytest.mark.parametrize(
    ("key", "text"),
    [
        pytest.param(
            AlertKey.of(EventType.POLICY_INVALID, "main@sha1:abc"),
            "PolicyInvalid:main@sha1:abc",
            id="revision-with-colon",
        ),
        pytest.param(
            AlertKey.of(EventType.IDENTITY_CONFLICT, "d-1", "m-2"),
            "IdentityConflict:d-1:m-2",
            id="two-parts",
        ),
        pytest.param(
            AlertKey.of(
                EventType.AGENT_OFFLINE_IN_WINDOW,
                "d-1",
                WindowOccurrence("acme/night", "2026-11-20T02:00Z").format(),
            ),
            "AgentOfflineInWindow:d-1:acme/night@2026-11-20T02:00Z",
            id="window-occurrence",
        ),
    ],
)
def test_alert_key_round_trip(key: AlertKey, text: str) -> None:
    """`format` writes the stored dedupe key; `parse` gives the kind and the whole subject."""
    assert (text, key) == (key.format(), AlertKey.parse(text))


@pytest.mark.parametrize("text", [None, "", "PolicyInvalid", "NoSuchKind:x"])
def test_alert_key_parse_refuses_other_text(text: str | None) -> None:
    """Text without a known kind and a `:` is not an alert key."""
    assert AlertKey.parse(text) is None
