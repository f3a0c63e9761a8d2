"""A real HTTP server for feed downloads: `http.server` on 127.0.0.1 (port 0, in a thread)
serving files by path, answering first with the (status, headers) of its script, recording
every request path (query included)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FeedServer:
    base: str  # http://127.0.0.1:PORT
    files: dict[str, bytes]
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@contextmanager
def feed_server(
    files: dict[str, bytes], *, script: list[tuple[int, dict[str, str]]] | None = None
) -> Iterator[FeedServer]:
    served = FeedServer("", files, list(script or ()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            status, headers = served.script.pop(0) if served.script else (200, {})
            body = served.files.get(self.path.split("?", 1)[0], b"") if status == 200 else b""
            if status == 200 and self.path.split("?", 1)[0] not in served.files:
                status = 404
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
