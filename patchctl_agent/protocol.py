"""The controller's agent API (DESIGN.md §4) as four calls: enrol, report, poll jobs, job event."""

from __future__ import annotations

import re
from typing import Any

from patchctl_agent import AGENT_VERSION, wire

# What the controller accepts as a hostname and a label key (its HOSTNAME_PATTERN and
# LABEL_KEY_PATTERN, which tests/agent holds these to), checked before anything is sent so that
# a mistake is a sentence and exit 2, and the enrolment token does not travel for nothing.
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}")
MAX_HOSTNAME = 253


class RefusedError(Exception):
    """The controller answered with an error (4xx): retrying the same call will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the controller refused ({status}): {message}")
        self.status = status
        self.message = message


def check_hostname(name: str) -> str:
    """`name` when the controller takes it as a device's hostname; ValueError saying what a
    host name may contain otherwise."""
    labels = name.split(".")
    if len(name) > MAX_HOSTNAME or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{name!r} is not a host name such as `web-01` or `realhost.example.org` (letters, "
            f"digits and inner '-' in dot-separated labels of at most 63, {MAX_HOSTNAME} in all)"
        )
    return name


def check_label_key(key: str) -> str:
    """`key` when the controller takes it as a label's key; ValueError saying what one is."""
    if not _LABEL_KEY.fullmatch(key):
        raise ValueError(
            f"{key!r} is not a label key such as `env` or `example.org/site` (a letter or digit, "
            "then letters, digits, '.', '_', '/' and '-', at most 63 in all)"
        )
    return key


class Controller:
    """One controller, reached at `server` (https, or http to loopback)."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self.ca_file = ca_file
        self.timeout = timeout

    def enroll(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/v1/enroll", body, auth=False)

    def report(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/devices/{device_id}/report", body)

    def jobs(self, device_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/devices/{device_id}/jobs", None)

    def event(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/jobs/{job_id}/events", body)

    def _call(self, method: str, path: str, body: Any, *, auth: bool = True) -> dict[str, Any]:
        """The JSON answer; RefusedError on 4xx, WireError on 5xx or no answer (both transient)."""
        answer = wire.request(
            method,
            self.server + path,
            body=body,
            token=self._token if auth else None,
            ca_file=self.ca_file,
            timeout=self.timeout,
            user_agent=AGENT_VERSION,
        )
        if answer.status >= 500:
            raise wire.WireError(f"{method} {path}: the controller answered {answer.status}")
        if answer.status >= 400:
            raise RefusedError(answer.status, error_message(answer.body))
        if not isinstance(answer.body, dict):
            raise wire.WireError(f"{method} {path}: the answer is not a JSON object")
        return answer.body


def error_message(body: Any) -> str:
    """The controller's error text (`{"error": code, "message": ...}`, `{"detail": ...}`)."""
    if isinstance(body, dict):
        if body.get("message"):
            return str(body["message"])
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if "detail" in body:
            return str(body["detail"])
    return str(body)[:500]
