"""TLS for `serve`: a certificate and key checked at start and reloaded on SIGHUP.

uvicorn builds one `ssl.SSLContext` at start and uses it for every handshake; loading a new
chain into that same context makes every later connection present the new certificate, while
connections already open keep theirs. A renewal (certbot, an internal CA) therefore needs a
`systemctl kill -s HUP patchctl`, not a restart. A pair that does not load is refused at start
(exit 2) and, on reload, logged and ignored: the service keeps the certificate it has.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import structlog

from controller import errors

log = structlog.get_logger("patchctl.tls")


class TlsError(errors.ConfigurationError):
    """The certificate or key cannot be used; the message names the files and why."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate chain (leaf first) and its private key."""

    cert: Path
    key: Path

    def check(self) -> None:
        """Load the pair into a throw-away context; TlsError when it does not load."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            probe.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TlsError(f"TLS certificate {self.cert} with key {self.key}: {reason}") from None


def reload(files: TlsFiles, context: ssl.SSLContext) -> bool:
    """Load the pair into the live context, after checking it in a fresh one (a failed load
    half-way would leave the live context with a certificate and a key that do not match)."""
    try:
        files.check()
    except TlsError as exc:
        log.warning("tls certificate not reloaded; keeping the current one", error=str(exc))
        return False
    context.load_cert_chain(files.cert, files.key)
    log.info("tls certificate reloaded", cert=str(files.cert))
    return True
