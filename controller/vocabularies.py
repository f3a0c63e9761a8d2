"""The words patchctl reads and writes: name patterns and the closed vocabularies (`StrEnum`)
that the policy kinds, the store, the APIs and the command line share, and how a token kind
reads in their messages.

Standard library only, so that `patchctl <command> --help` lists their values without importing
pydantic or SQLAlchemy (issue 14, item 6). Each is defined here once; `controller.kinds.common`,
`controller.kinds.feeds`, `controller.kinds.reports`, `controller.kinds.notifications` and
`controller.store.alerts` re-export the ones that belong to them.
"""

from __future__ import annotations

import re
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
# A label key an agent reports (`role`, `env`, `k8s.io/zone`): what Kubernetes label keys allow.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$"
PATCH_ID_PATTERN = r"^\S+$"
MACHINE_ID_PATTERN = r"^[A-Za-z0-9{}-]{8,64}$"  # /etc/machine-id, Windows `MachineGuid`
MODULE_STREAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*:[A-Za-z0-9][A-Za-z0-9_.+-]*$"  # dnf's
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"  # a variable a policy names for a secret
HTTP_URL_PATTERN = r"^https?://"
# The forms the policy's own validators read, shown to editors by the JSON Schemas
DURATION_PATTERN = r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
# the same with a digit other than 0 somewhere: `0s`, `0h0m` and `00d` are the zero durations
POSITIVE_DURATION_PATTERN = r"^(?=.*[1-9])(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
COUNT_OR_PERCENT_PATTERN = r"^(\d+|\d+(\.\d+)?%)$"

# The HTML standard's "valid email address" (WHATWG): a bare `local@domain`, with no display
# name, comment or quoting, which every mail server and library takes, and no comma, space or
# angle bracket that would make a header name other recipients. Internationalised addresses
# (non-ASCII) are not taken.
_ADDRESS = (
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
EMAIL_ADDRESS_PATTERN = f"^{_ADDRESS}$"
# A mailbox as a header writes one (RFC 5322 §3.4): the bare address, or a display name and the
# address in angle brackets (`Ops <ops@example.com>`); the name holds no quote, comma, bracket
# or line break, which would need quoting or would name another recipient.
MAILBOX_PATTERN = f'^(?:{_ADDRESS}|[^<>",\r\n]*<{_ADDRESS}>)$'
# What GitHub (letters, digits, inner '-', at most 39), Gitea (letters, digits, '-', '_', '.',
# at most 40) and GitLab (the same, not ending in '.', at most 255) accept as a user name, taken
# together: a name none of them allows (`bad reviewer!`, `@alice`, ``) is a typo found at
# review time rather than a request the forge refuses after the merge. A mention's `@` may
# lead it (`@alice`).
FORGE_USER_PATTERN = r"^@?[A-Za-z0-9_-](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9_-])?$"
# A label GitHub and GitLab both take: GitHub allows 50 characters; GitLab's API reads a comma
# as the separator between labels; neither keeps leading or trailing blanks.
FORGE_LABEL_PATTERN = r"^[^\s,](?:[^,\x00-\x1f\x7f]{0,48}[^\s,])?$"

# What the user meant to write, for each pattern: a value that does not match one is told this
# (the policy loader's field errors and the API's 422 details), never the regular expression.
PATTERN_MEANINGS = {
    NAME_PATTERN: "is not a valid name: lowercase letters, digits and '-', at most 63",
    DEVICE_NAME_PATTERN: "is not a device name: a host name such as `web-01` or "
    "`realhost.example.org` (letters, digits and inner '-' in dot-separated labels)",
    TENANT_PATTERN: "is not a tenant path such as `acme` or `acme/retail`",
    LABEL_KEY_PATTERN: "is not a label key: a letter or digit, then letters, digits, '.', '_', "
    "'/' or '-', at most 63 in all",
    PATCH_ID_PATTERN: "is not a patch id: it holds a space",
    MACHINE_ID_PATTERN: "is not a machine id: 8 to 64 letters, digits, '-' or braces, as in "
    "/etc/machine-id or Windows' MachineGuid",
    MODULE_STREAM_PATTERN: "is not a module stream: `name:stream`, such as `php:8.2`",
    ENV_NAME_PATTERN: "is not an environment variable name: capital letters, digits and '_', "
    "not starting with a digit",
    HTTP_URL_PATTERN: "is not an http:// or https:// URL",
    DURATION_PATTERN: "is not a duration such as `90s`, `15m`, `4h`, `7d` or `2w`",
    POSITIVE_DURATION_PATTERN: "is not a duration longer than 0s such as `90s`, `4h` or `7d`",
    COUNT_OR_PERCENT_PATTERN: "is not a count or a percentage such as `5` or `10%`",
    EMAIL_ADDRESS_PATTERN: "is not an email address",
    MAILBOX_PATTERN: "is not an email address (`ops@example.com` or `Ops <ops@example.com>`)",
    FORGE_USER_PATTERN: "is not a forge user name: letters, digits, '-', '_' and inner '.' "
    "(after an optional '@')",
    FORGE_LABEL_PATTERN: "is not a label a forge takes: 1 to 50 characters, no comma, no "
    "leading or trailing blank",
}


def pattern_meaning(pattern: str) -> str:
    """The sentence (after the quoted value) for a value that does not match `pattern`."""
    return PATTERN_MEANINGS.get(pattern, f"does not match the pattern {pattern}")


# --- http(s) URLs -------------------------------------------------------------------------

WEB_SCHEMES = ("http", "https")
# RFC 3986 §3 (the generic syntax; appendix B reads it with this regex): `scheme://authority`,
# the authority up to the path, query or fragment, made of `userinfo@`, a host (a name, or an
# IP literal in brackets) and `:port`. Written out here because the pure kinds import no URL
# library; `urllib.parse` reads every URL this accepts the same way.
_URL = re.compile(r"^(?P<scheme>[^:/?#]*)://(?P<authority>[^/?#]*)")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\[\]]*\]|[^\[\]:]*)(?::(?P<port>[^:]*))?$")
MAX_PORT = 65535


def http_url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) URL with a host, as words that follow it (`'ftp://x' is
    refused: ...`): not a URL, a scheme other than http(s), no host, a bad port; None for one.
    The one rule of PatchFeed sources, the server's `[feeds] allow` entries and `--server`."""
    found = _URL.match(url)
    scheme = found["scheme"].lower() if found else ""
    if found is None or scheme not in WEB_SCHEMES:
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        return f"is refused: only http(s) URLs are fetched, not {shown}"
    address = _HOST_PORT.match(found["authority"].rpartition("@")[2])
    if address is None:
        return "is not a valid URL (a host name, or an IP address in brackets, and a port)"
    port = address["port"]
    if port and not (port.isascii() and port.isdigit() and int(port) <= MAX_PORT):
        return f"is not a valid URL (port {port!r} is not a number from 0 to {MAX_PORT})"
    if not address["host"].strip("[]"):
        return "is refused: an http(s) URL needs a host"
    return None


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
