"""One redaction for every text that leaves the process: URLs, free text, JSON values, known
secrets; and the alerts table and notification events that apply it."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from controller.notify.events import from_alert
from controller.redaction import redact_text, redact_url, redact_value, remember_secret
from controller.store import alerts as alert_store

if TYPE_CHECKING:
    from controller.store import Store
    from controller.testing import SettableClock


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@feeds.example/osv/all.zip", "https://***@feeds.example/osv/all.zip"),
        (
            "https://feeds.example/a.json?token=abc&page=2",
            "https://feeds.example/a.json?token=***&page=***",
        ),
        ("https://feeds.example/a.json#frag", "https://feeds.example/a.json"),
        (
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T00000000/B00000000/***",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/abcDEF_ghi-JKL0123456789abcdefghijklmnopqrstuvwxyz0123456789ab",
            "https://discord.com/api/webhooks/123456789012345678/***",
        ),
        ("http://[::1]:8080/osv/", "http://[::1]:8080/osv/"),
        (
            "https://feeds.example/ubuntu-security-notices/osv/USN-7123-1.json",
            "https://feeds.example/ubuntu-security-notices/osv/USN-7123-1.json",
        ),
        (
            "file:///tmp/test_unreadable_sources_raise_0/x",
            "file:///tmp/test_unreadable_sources_raise_0/x",
        ),
        (
            "postgresql+psycopg://app:pw@db:5432/patchctl",
            "postgresql+psycopg://***@db:5432/patchctl",
        ),
        ("sqlite:////var/lib/patchctl/patchctl.db", "sqlite:////var/lib/patchctl/patchctl.db"),
        ("sqlite:///patchctl.db", "sqlite:///patchctl.db"),
    ],
    ids=[
        "credentials",
        "query-values",
        "fragment",
        "slack-key",
        "discord-token",
        "ipv6",
        "ordinary-path",
        "file-path-kept",
        "database",
        "sqlite-absolute",
        "sqlite-relative",
    ],
)
def test_a_url_loses_its_secrets_and_keeps_its_place(url: str, expected: str) -> None:
    """Credentials, query values and key-like path segments go; host and path stay."""
    assert expected == redact_url(url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://u:p@h.example/x?token=t failed: HTTP 401",
            "GET https://***@h.example/x?token=*** failed: HTTP 401",
        ),
        ("Authorization: Bearer abcdef0123456789", "Authorization: Bearer ***"),
        ("retry with password=hunter22 later", "retry with password=*** later"),
        (
            "cannot fetch git@github.com:acme/policy.git",
            "cannot fetch git@github.com:acme/policy.git",
        ),
        ("no secret here: 3 errors", "no secret here: 3 errors"),
    ],
    ids=["url-in-text", "bearer", "pair", "scp-like-git-url", "plain"],
)
def test_free_text_is_redacted(text: str, expected: str) -> None:
    """URLs, bearer credentials and key=value secrets inside sentences are masked."""
    assert expected == redact_text(text)


def test_a_remembered_secret_is_masked_wherever_it_appears() -> None:
    """A secret known from the environment is masked even where no pattern finds it."""
    remember_secret("https://chat.example/hooks/plainwords")
    remember_secret("hunter2-but-longer")
    remember_secret("short")
    assert {
        "url": "POST https://chat.example/*** 200",
        "nested": ["key ***"],
        "short": "short",
    } == redact_value(
        {
            "url": "POST https://chat.example/hooks/plainwords 200",
            "nested": ["key hunter2-but-longer"],
            "short": "short",
        }
    )


def test_alerts_are_stored_and_notified_redacted(sqlite_store: Store, clock: SettableClock) -> None:
    """An alert quoting a URL with credentials is stored and sent without them."""
    alert = alert_store.NewAlert(
        kind="InstallFailed",
        severity="critical",
        message="fetch https://u:pw-S3cret@repo.example/x?token=tok-S3cret failed",
        tenant="acme",
        details={"source": "https://u:pw-S3cret@repo.example/x"},
    )
    with sqlite_store.write() as conn:
        alert_store.add_alert(conn, alert, now=clock())
    with sqlite_store.read() as conn:
        [row] = alert_store.list_alerts(conn, scope="acme")
    event = from_alert(row)
    assert event is not None
    assert ("fetch https://***@repo.example/x?token=*** failed", "https://***@repo.example/x") == (
        row["message"],
        row["details"]["source"],
    )
    assert (row["message"], row["details"]) == (event.message, event.details)


def test_a_remote_command_error_hides_the_server_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`patchctl status --server URL` names the server without its password."""
    from click.testing import CliRunner  # noqa: PLC0415

    from controller.cli import main  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PATCHCTL_TOKEN", "patchctl_read_0123456789abcdef")
    server = f"http://reader:pw-S3cret@127.0.0.1:{port}/"
    result = CliRunner().invoke(main, ["status", "--server", server])
    assert (2, False) == (result.exit_code, "pw-S3cret" in result.output)
    assert f"cannot reach http://***@127.0.0.1:{port}/" in result.output
