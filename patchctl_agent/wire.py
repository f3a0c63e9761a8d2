"""JSON and HTTP for the agent, on the modules every `python3` has.

Debian's `python3-minimal` (what a minimal server may have) ships neither `json` nor
`http.client`, so the agent carries its own small HTTP/1.1 client over `socket` and `ssl`, and a
JSON reader and writer used when the standard `json` module is absent. Both follow RFC 8259 /
RFC 9112 closely enough for the controller's answers; they are not general-purpose libraries.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import ssl
from typing import Any, NamedTuple
from urllib.parse import urlsplit

try:  # the standard module when the host has it
    import json as _json
except ImportError:  # pragma: no cover - exercised by the minimal-stdlib test
    _json = None  # type: ignore[assignment]


class WireError(Exception):
    """The controller could not be reached, or its answer was not HTTP/JSON (transient)."""


# --- JSON ----------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact JSON text of `value` (dicts, lists, str, int, float, bool, None)."""
    if _json is not None:
        return _json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return encode(value)


def loads(text: str) -> Any:
    """The value of JSON `text`; ValueError when it is not JSON."""
    if _json is not None:
        return _json.loads(text)
    return decode(text)


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def encode(value: Any) -> str:  # noqa: PLR0911 - one branch per JSON type
    """JSON text of `value`, without the `json` module."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON has no NaN or infinity")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(str(k))}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_WS = " \t\n\r"


def decode(text: str) -> Any:
    """The value of JSON `text`, without the `json` module; ValueError names the offset."""
    value, end = _value(text, _skip(text, 0))
    end = _skip(text, end)
    if end != len(text):
        raise ValueError(f"extra data at offset {end}")
    return value


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WS:
        index += 1
    return index


def _value(text: str, index: int) -> tuple[Any, int]:
    if index >= len(text):
        raise ValueError("unexpected end of JSON")
    char = text[index]
    if char == "{":
        return _object(text, index + 1)
    if char == "[":
        return _array(text, index + 1)
    if char == '"':
        return _read_string(text, index + 1)
    for word, value in (("true", True), ("false", False), ("null", None)):
        if text.startswith(word, index):
            return value, index + len(word)
    match = _NUMBER.match(text, index)
    if match is None:
        raise ValueError(f"unexpected {char!r} at offset {index}")
    number = match.group(0)
    if match.group(1) or match.group(2):
        return float(number), match.end()
    return int(number), match.end()


def _object(text: str, index: int) -> tuple[dict[str, Any], int]:
    found: dict[str, Any] = {}
    index = _skip(text, index)
    if text.startswith("}", index):
        return found, index + 1
    while True:
        if not text.startswith('"', index):
            raise ValueError(f"expected a key at offset {index}")
        key, index = _read_string(text, index + 1)
        index = _skip(text, index)
        if not text.startswith(":", index):
            raise ValueError(f"expected ':' at offset {index}")
        found[key], index = _value(text, _skip(text, index + 1))
        index = _skip(text, index)
        if text.startswith("}", index):
            return found, index + 1
        if not text.startswith(",", index):
            raise ValueError(f"expected ',' or '}}' at offset {index}")
        index = _skip(text, index + 1)


def _array(text: str, index: int) -> tuple[list[Any], int]:
    found: list[Any] = []
    index = _skip(text, index)
    if text.startswith("]", index):
        return found, index + 1
    while True:
        item, index = _value(text, _skip(text, index))
        found.append(item)
        index = _skip(text, index)
        if text.startswith("]", index):
            return found, index + 1
        if not text.startswith(",", index):
            raise ValueError(f"expected ',' or ']' at offset {index}")
        index += 1


_UNESCAPE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _read_string(text: str, index: int) -> tuple[str, int]:
    out: list[str] = []
    while True:
        if index >= len(text):
            raise ValueError("unterminated string")
        char = text[index]
        if char == '"':
            return "".join(out), index + 1
        if char != "\\":
            out.append(char)
            index += 1
            continue
        code = text[index + 1 : index + 2]
        if code == "u":
            point = int(text[index + 2 : index + 6], 16)
            index += 6
            if 0xD800 <= point < 0xDC00 and text.startswith("\\u", index):
                low = int(text[index + 2 : index + 6], 16)
                point = 0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00)
                index += 6
            out.append(chr(point))
        elif code in _UNESCAPE:
            out.append(_UNESCAPE[code])
            index += 2
        else:
            raise ValueError(f"bad escape at offset {index}")


# --- HTTP ----------------------------------------------------------------------------------


class Answer(NamedTuple):
    status: int
    body: Any  # the decoded JSON, or the text when it is not JSON


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_server_url(url: str, *, insecure_http: bool) -> str:
    """`url` without a trailing slash; ValueError when it is not http(s), or plain http to a
    host that is not loopback without `insecure_http` (the device token would travel in clear).
    The message names the value, not where it was given (the caller knows: a flag, agent.conf)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not insecure_http:
        raise ValueError(
            f"{url!r} is plain http to another host; use https:// "
            "(or --insecure-http, which sends the device token unencrypted)"
        )
    return url.rstrip("/")


def request(
    method: str,
    url: str,
    *,
    body: Any = None,
    token: str | None = None,
    ca_file: str | None = None,
    timeout: float = 30.0,
    user_agent: str = "patchctl-agent",
) -> Answer:
    """One HTTP/1.1 request with a JSON body; WireError when the server cannot be reached."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    data = dumps(body).encode("utf-8") if body is not None else b""
    host_header = host if ":" not in host else f"[{host}]"
    if parts.port:
        host_header += f":{parts.port}"
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host_header}",
        f"User-Agent: {user_agent}",
        "Accept: application/json",
        "Connection: close",
        f"Content-Length: {len(data)}",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
    try:
        with socket.create_connection((host, port), timeout=timeout) as plain:
            if https:
                context = ssl.create_default_context(cafile=ca_file)
                with context.wrap_socket(plain, server_hostname=host) as secure:
                    received = _exchange(secure, raw)
            else:
                received = _exchange(plain, raw)
    except ssl.SSLError as exc:
        raise WireError(f"TLS with {host}:{port} failed: {exc}") from exc
    except OSError as exc:
        raise WireError(f"cannot reach {host}:{port}: {exc}") from exc
    return parse_response(received)


def _exchange(sock: socket.socket, raw: bytes) -> bytes:
    sock.sendall(raw)
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse_response(received: bytes) -> Answer:
    """Status and decoded body of a whole HTTP/1.1 response (Content-Length, chunked or
    read-to-close); WireError when it is not one."""
    head, sep, payload = received.partition(b"\r\n\r\n")
    if not sep:
        raise WireError("the server closed the connection before a complete answer")
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith("HTTP/")
        or not status_line[1].isdigit()
    ):
        raise WireError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        payload = _unchunk(payload)
    elif "content-length" in headers:
        payload = payload[: int(headers["content-length"])]
    text = payload.decode("utf-8", "replace")
    try:
        body: Any = loads(text) if text.strip() else None
    except ValueError:
        body = text
    return Answer(int(status_line[1]), body)


def _unchunk(payload: bytes) -> bytes:
    out = []
    while payload:
        size_line, _, rest = payload.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        payload = rest[size + 2 :]
    return b"".join(out)
