"""A headless Chromium driven over the DevTools protocol on a pipe: no driver package needed.

`find_or_install_chromium()` returns Debian's `/usr/bin/chromium`, installing it with apt-get
when it is missing (the tests run as root); `Browser` starts it with `--remote-debugging-pipe`
(JSON messages separated by NUL bytes on file descriptors 3 and 4) and offers the four things
the dashboard test needs: open a page, run an expression in it, wait for the next page load,
and take a full-page screenshot. Every wait has a deadline, so a hung browser fails the test
instead of stalling the suite.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
WAIT_SECONDS = 30.0
_MOVE_FDS = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


class BrowserError(Exception):
    pass


def find_or_install_chromium() -> tuple[str | None, str]:
    """The chromium binary, installing Debian's package when missing; (None, why) on failure."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found:
        return found, "found"
    try:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            if done.returncode != 0:
                return None, f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"apt-get could not run: {exc}"
    found = shutil.which("chromium")
    return (found, "installed") if found else (None, "apt-get installed no chromium binary")


class Browser:
    """One headless Chromium with one page (a DevTools session attached to one target)."""

    def __init__(self, binary: str, profile: Path, *, width: int = 1280, height: int = 900) -> None:
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()
        args = [
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",  # we run as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        # The protocol wants our ends on the child's descriptors 3 (commands) and 4 (answers);
        # a tiny Python exec wrapper moves them there (sh cannot name descriptors above 9).
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _MOVE_FDS,
                str(commands_read),
                str(answers_write),
                binary,
                *args,
            ],
            pass_fds=(commands_read, answers_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(answers_write)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=True)
        self.width = width

    # --- protocol -------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._answers, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self._messages.put(json.loads(message))
        self._messages.put(None)

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events seen meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._events.append(answer)

    def _receive(self) -> dict[str, Any]:
        try:
            message = self._messages.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            raise BrowserError(f"chromium said nothing for {WAIT_SECONDS} s") from None
        if message is None:
            raise BrowserError("chromium closed the DevTools pipe (did it crash?)")
        return message

    def wait_for_load(self) -> None:
        """Wait for the next `load` event of the page after the last `forget_events()`."""
        while True:
            for event in self._events:
                if event.get("method") == "Page.loadEventFired":
                    self._events.clear()
                    return
            self._events.append(self._receive())

    def forget_events(self) -> None:
        self._events.clear()

    # --- what the tests do ----------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate and wait until the page has loaded."""
        self.forget_events()
        found = self.call("Page.navigate", session=True, url=url)
        if found.get("errorText"):
            raise BrowserError(f"{url}: {found['errorText']}")
        self.wait_for_load()

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (the test's script, not the page's)."""
        found = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in found:
            raise BrowserError(f"{expression}: {found['exceptionDetails']}")
        return found["result"].get("value")

    def dom(self) -> str:
        """The rendered document, serialised."""
        html: str = self.evaluate("document.documentElement.outerHTML")
        return html

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page, at the browser's width."""
        metrics = self.call("Page.getLayoutMetrics", session=True)
        height = int(metrics["cssContentSize"]["height"]) + 1
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=self.width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call("Page.captureScreenshot", session=True, format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(OSError, BrowserError):
            self.call("Browser.close")
        os.close(self._commands)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
