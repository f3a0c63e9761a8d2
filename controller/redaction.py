"""Secrets out of every text that leaves the process: logs, status, alerts, errors, messages.

The one home of redaction; every writer of such text calls it (the log pipeline does for every
library's lines, see `controller.logs`):

- `redact_url(url)`: a URL without its secrets. Credentials (`user:pass@`) become `***@`, every
  query value becomes `***` (the keys stay, so a reader still sees `?token=***`), the fragment is
  dropped, and in a web URL a path segment that looks like a key (20 or more letters and
  digits, or 40 or more with `-` and `_` too: the last segment of a Slack or Discord webhook
  URL) becomes `***`. `https://u:p@feeds.example/osv/all.zip?token=abc` → `https://***@feeds.example/osv/all.zip?token=***`.
- `redact_text(text)`: every URL in a free text redacted as above, and `Bearer …`/`Basic …`
  credentials and `token=…`, `password=…`-style pairs masked.
- `redact_value(value)`: the same over the strings of a JSON-like value (status, alert details).
- `remember_secret(value)`: a value known to be secret (a Slack webhook URL, a webhook's signing
  secret, an SMTP password read from the environment at send time) is masked wherever it appears
  later, even where no pattern above would recognise it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s'\"<>`]+")
# 20+ letters and digits (Slack), or 40+ with `-`/`_` and a digit (Discord): not words joined by
# separators, as names of files and directories are
_KEY_LIKE = re.compile(r"[A-Za-z0-9]{20,}|(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{40,}")
_WEB = {"http", "https", "ws", "wss"}
_AUTH = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_PAIR = re.compile(
    r"(?i)\b((?:access_|api_?|auth_?|private_|refresh_)?(?:token|key|secret|password|passwd|pwd|"
    r"signature|sig|credentials?))=[^&\s'\"]+"
)
_known: dict[str, str] = {}  # secret -> what is shown instead
_known_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Mask `value` in every redacted text from now on (values under 8 characters are ignored).

    A URL is shown as its origin and `/***` (`https://hooks.slack.com/***`), so a reader still
    sees where a request went."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    shown = MASK
    if _URL.fullmatch(value):
        parts = urlsplit(value)
        shown = (
            f"{parts.scheme}://{parts.hostname or ''}"
            + (f":{parts.port}" if parts.port is not None else "")
            + f"/{MASK}"
        )
    with _known_lock:
        _known[value] = shown


def redact_url(url: str) -> str:
    """`url` without credentials, query values, fragment or key-like path segments."""
    url = _mask_known(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL after all (a bad port, an unbalanced bracket)
        return _PAIR.sub(rf"\1={MASK}", url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{MASK}@" if "@" in parts.netloc else ""
    netloc += f"{host}:{port}" if port is not None else host
    path = parts.path
    if parts.scheme.lower() in _WEB:
        path = "/".join(MASK if _KEY_LIKE.fullmatch(seg) else seg for seg in path.split("/"))
    query = "&".join(
        f"{pair.partition('=')[0]}={MASK}" if "=" in pair else MASK
        for pair in parts.query.split("&")
        if pair
    )
    # Composed by hand: urlunsplit drops the empty authority of `sqlite:////var/lib/x.db`.
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def redact_text(text: str) -> str:
    """`text` with every URL redacted (`redact_url`) and credential-looking pairs masked."""
    text = _mask_known(text)
    if "://" in text:
        text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    if "=" in text:
        text = _PAIR.sub(rf"\1={MASK}", text)
    return _AUTH.sub(rf"\1 {MASK}", text)


def redact_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, strings, numbers) with every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


def _mask_known(text: str) -> str:
    with _known_lock:
        known = sorted(_known.items(), key=lambda item: len(item[0]), reverse=True)
    # longest first: a longer secret may contain a shorter one
    for secret, shown in known:
        if secret in text:
            text = text.replace(secret, shown)
    return text
