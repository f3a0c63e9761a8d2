"""Notifications and the real store: events read since a cursor, channel state in status,
report events, and the `[smtp]` settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from notifyhelpers import T0

from controller.kinds.notifications import AlertSeverity, EventType
from controller.notify import ChannelStatus, SmtpSettings, load_smtp_settings
from controller.notify.events import from_alert, from_audit
from controller.notify.settings import SettingsError
from controller.notify.state import StatusWriter, channel_states, new_events
from controller.reports.model import ReportData
from controller.reports.publish import Publication, published_events
from controller.store import Store, alerts, open_store
from controller.store import audit as audit_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty SQLite store."""
    opened = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    yield opened
    opened.close()


def alert(key: str, kind: str = "InstallFailed", severity: str = "critical") -> alerts.NewAlert:
    return alerts.NewAlert(
        kind=kind,
        severity=severity,
        message=f"{key} failed",
        tenant="acme/retail",
        device_id=None,
        dedupe_key=key,
    )


def test_new_events_start_at_the_newest_rows_then_follow(store: Store) -> None:
    """The first call only sets the cursor; later calls return what was stored since."""
    with store.write() as conn:
        alerts.add_alert(conn, alert("old"), now=T0)
        assert [] == new_events(conn, now=T0)
        alerts.add_alert(conn, alert("InstallFailed:web-01:USN-1"), now=T0 + timedelta(seconds=1))
        audit_store.add_audit_event(
            conn,
            audit_store.NewAuditEvent(
                actor="Alice <alice@example.com>",
                action="ApprovalGranted",
                object_key="Approval/acme/openssl",
                tenant="acme",
                revision="main@sha1:abc",
            ),
            now=T0 + timedelta(seconds=2),
        )
        audit_store.add_audit_event(
            conn,
            audit_store.NewAuditEvent(
                actor="controller", action="InstallJobsIssued", tenant="acme"
            ),
            now=T0 + timedelta(seconds=3),
        )
        events = new_events(conn, now=T0)
        again = new_events(conn, now=T0)
    assert [
        ("InstallFailed:web-01:USN-1", EventType.INSTALL_FAILED, AlertSeverity.CRITICAL),
        ("audit:1", EventType.APPROVAL_CHANGED, AlertSeverity.INFO),
    ] == [(e.key, e.type, e.severity) for e in events]
    assert (
        "ApprovalGranted Approval/acme/openssl in main@sha1:abc by Alice <alice@example.com>"
    ) == events[1].message
    assert [] == again


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("ApprovalRevoked", EventType.APPROVAL_CHANGED),
        ("ApprovalRejected", EventType.APPROVAL_REJECTED),
        ("BaselineChanged", EventType.CONFIGURATION_CHANGED),
        ("HistoryRewritten", EventType.CONFIGURATION_CHANGED),
        ("PolicyInvalid", EventType.POLICY_INVALID),
        ("InstallJobsIssued", None),
    ],
    ids=["revoked", "rejected", "baseline", "rewritten", "invalid", "controller-action"],
)
def test_audit_actions_map_to_notification_events(action: str, expected: EventType | None) -> None:
    """Approval changes reach ApprovalChanged, other policy changes ConfigurationChanged."""
    row = {"id": 7, "at": T0, "action": action, "tenant": "acme", "revision": "main@sha1:f"}
    converted = from_audit(row)
    assert expected == (converted.type if converted else None)


def test_an_invalid_revision_is_one_event_from_the_alert_and_the_audit_trail() -> None:
    """The audit event of an invalid commit takes the alert's key, so it is sent once."""
    revision = "main@sha1:bad"
    audit = from_audit({"id": 3, "at": T0, "action": "PolicyInvalid", "revision": revision})
    raised = from_alert(
        {
            "id": 9,
            "kind": "PolicyInvalid",
            "severity": "critical",
            "message": "does not validate",
            "created_at": T0,
            "dedupe_key": f"PolicyInvalid:{revision}",
        }
    )
    assert audit is not None
    assert raised is not None
    assert audit.key == raised.key


def test_unknown_alert_kinds_are_not_events() -> None:
    """An alert kind no Notification can subscribe to is skipped, not an error."""
    row = {"id": 1, "kind": "Mystery", "severity": "info", "message": "m", "created_at": T0}
    assert from_alert(row) is None


def test_channel_state_is_kept_in_the_status_table(store: Store) -> None:
    """`notify:<channel-id>` holds what status shows of a channel."""
    writer = StatusWriter(store, clock=lambda: T0)
    writer(
        ChannelStatus(
            "webhook:hooks.example:1a2b",
            "webhook",
            failures=2,
            queued=3,
            last_error="hooks.example: HTTP 503 Service Unavailable (attempt 2 of 5)",
            last_error_at=T0,
            next_attempt=T0 + timedelta(seconds=4),
        )
    )
    with store.read() as conn:
        states = channel_states(conn)
    assert {
        "webhook:hooks.example:1a2b": {
            "channel": "webhook:hooks.example:1a2b",
            "kind": "webhook",
            "delivered": 0,
            "messages": 0,
            "failures": 2,
            "dropped": 0,
            "queued": 3,
            "lastSuccess": None,
            "lastError": "hooks.example: HTTP 503 Service Unavailable (attempt 2 of 5)",
            "lastErrorAt": "2026-12-07T06:00:00+00:00",
            "nextAttempt": "2026-12-07T06:00:04+00:00",
        }
    } == states


def test_a_published_report_is_an_event_with_its_summary_and_html() -> None:
    """ReportPublished carries the Markdown summary and the HTML report as an attachment."""
    data = ReportData(tenant="acme/retail", revision="main@sha1:abc", generated_at=T0)
    publication = Publication(reports=(data,), files={}, schedule="acme/weekly")
    [published] = published_events(publication)
    assert (
        "report:acme/weekly:acme/retail:2026-12-07T06:00:00Z",
        EventType.REPORT_PUBLISHED,
        "acme/retail",
        "compliance report for acme/retail: 0.0% compliant, 0 non-compliant, 0 unknown "
        "(main@sha1:abc)",
    ) == (published.key, published.type, published.tenant, published.message)
    assert published.body is not None
    assert published.body.startswith("# Patch compliance: acme/retail\n")
    [attachment] = published.attachments
    assert ("compliance-acme.retail.html", "text/html") == (
        attachment.filename,
        attachment.content_type,
    )
    assert attachment.data.startswith(b"<!DOCTYPE html>")


def test_smtp_settings_come_from_the_smtp_table(tmp_path: Path) -> None:
    """The `[smtp]` table of patchctl.toml, with the password left in the environment."""
    config = tmp_path / "patchctl.toml"
    config.write_text(
        "[serve]\nlisten = '0.0.0.0:8080'\n\n[smtp]\nhost = 'mail.example.com'\nport = 587\n"
        "from = 'patchctl@example.com'\nstarttls = true\nuser = 'patchctl'\n"
        "password_env = 'SMTP_PASSWORD'\n"
    )
    assert SmtpSettings(
        host="mail.example.com",
        sender="patchctl@example.com",
        port=587,
        starttls=True,
        user="patchctl",
        password_env="SMTP_PASSWORD",  # noqa: S106 - the name of a variable
    ) == load_smtp_settings(config)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("host = 'm'\nfrom = 'p@example.com'\npassword = 'x'\n", "unknown smtp key"),
        ("host = 'm'\nfrom = 'nobody'\n", "is not an email address"),
        ("host = 'm'\nfrom = '@'\n", "smtp.from '@' is not an email address"),
        ("host = 'm'\nfrom = 'Ops, Team <ops@x.io>'\n", "smtp.from 'Ops, Team <ops@x.io>' is not"),
        ("host = 'm'\nfrom = 'p@x.io'\nuser = 'u'\n", "needs smtp.password_env"),
        ("host = 'm'\nfrom = 'p@x.io'\nssl = true\nstarttls = true\n", "not both"),
        ("host = 'm'\nfrom = 'p@x.io'\nport = 'many'\n", "smtp.port must be an integer"),
    ],
    ids=[
        "password-in-file",
        "bad-from",
        "from-without-names",
        "from-with-a-comma-in-its-name",
        "user-without-password",
        "ssl-and-starttls",
        "bad-port",
    ],
)
def test_bad_smtp_settings_name_the_file_and_the_problem(
    tmp_path: Path, table: str, message: str
) -> None:
    """Every mistake names patchctl.toml, the table and what is wrong."""
    config = tmp_path / "patchctl.toml"
    config.write_text("[smtp]\n" + table)
    with pytest.raises(SettingsError, match=message) as raised:
        load_smtp_settings(config)
    assert str(raised.value).startswith(f"{config}: [smtp]: ")


def test_no_smtp_table_means_no_email(tmp_path: Path) -> None:
    """Without the file or the table, email channels report that SMTP is not configured."""
    config = tmp_path / "patchctl.toml"
    assert load_smtp_settings(config) is None
    config.write_text("[serve]\nlisten = '127.0.0.1:8080'\n")
    assert load_smtp_settings(config) is None
