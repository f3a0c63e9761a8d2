"""The words patchctl reads and writes: name patterns and the closed vocabularies (`StrEnum`)
that the policy kinds, the store, the APIs and the command line share, and how a token kind
reads in their messages.

Standard library only, so that `patchctl <command> --help` lists their values without importing
pydantic or SQLAlchemy (issue 14, item 6). Each is defined here once; `controller.kinds.common`,
`controller.kinds.feeds`, `controller.kinds.reports`, `controller.kinds.notifications` and
`controller.store.alerts` re-export the ones that belong to them.
"""

from __future__ import annotations

from enum import StrEnum

# --- name patterns --------------------------------------------------------------------------

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# A device is named by its host name (RFC 1123 §2.1, RFC 952): dot-separated labels of letters,
# digits and inner hyphens, each at most 63 characters, 253 in all; `web-01` or
# `realhost.example.org`. DNS names are case-insensitive (RFC 4343), so names are kept lowercase.
DEVICE_NAME_PATTERN = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$"


# --- policy vocabularies --------------------------------------------------------------------


class OsFamily(StrEnum):
    WINDOWS = "windows"
    LINUX = "linux"


class FeedFormat(StrEnum):
    NATIVE = "native"
    OSV = "osv"
    MSRC = "msrc"
    CSAF = "csaf"
    UPDATEINFO = "updateinfo"
    DEB_PACKAGES = "deb-packages"
    DEBIAN_SECURITY = "debian-security"  # DSA/DLA lists and the tracker's per-CVE urgency


class ReportFormat(StrEnum):
    MARKDOWN = "markdown"
    CSV = "csv"
    HTML = "html"
    JSON = "json"


# --- alerts ---------------------------------------------------------------------------------


class EventType(StrEnum):
    """Every alert kind the controller raises, and the events a Notification subscribes to.

    Stored as the `kind` of an alert row and sent as an event's `type`: the values are wire
    values and never change. Every member but `FeedFailed` can be subscribed to
    (`NOTIFIABLE_EVENTS`); a feed failure is shown in alerts, not notified (docs/feeds.md).
    """

    INITIATE = "Initiate"  # a scan was initiated
    SEARCH = "Search"  # missing patches were found and approved
    DOWNLOAD_INITIATED = "DownloadInitiated"
    INSTALL_COMPLETE = "InstallComplete"
    INSTALL_FAILED = "InstallFailed"
    REBOOT_PENDING = "RebootPending"
    POLICY_INVALID = "PolicyInvalid"
    AGENT_OFFLINE_IN_WINDOW = "AgentOfflineInWindow"
    JOB_EXPIRED = "JobExpired"
    JOB_TIMED_OUT = "JobTimedOut"  # a started job reached no final state before its deadline
    APPROVAL_CHANGED = "ApprovalChanged"
    APPROVAL_REJECTED = "ApprovalRejected"
    CONFIGURATION_CHANGED = "ConfigurationChanged"
    REPORT_PUBLISHED = "ReportPublished"
    IDENTITY_CONFLICT = "IdentityConflict"  # another machine claimed an enrolled device's name
    FEED_FAILED = "FeedFailed"  # a patch feed failed to sync (an alert only, not notifiable)


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {AlertSeverity.INFO: 0, AlertSeverity.WARNING: 1, AlertSeverity.CRITICAL: 2}


class AlertState(StrEnum):
    """Where an alert stands: `open` (neither acknowledged nor resolved), `acknowledged` (an
    operator has seen it, not resolved yet) or `resolved`. Read from `acknowledged_at` and
    `resolved_at`; resolved wins over acknowledged."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# --- in messages ----------------------------------------------------------------------------


def token_phrase(kind: str) -> str:
    """A token kind in a sentence, with its article: "an admin token", "a read token"."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} token"
