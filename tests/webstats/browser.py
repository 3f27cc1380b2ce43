"""Headless Chromium for webstats' tests: DOM dumps, screenshots, and a page to watch.

`Chromium` speaks the DevTools protocol over ``--remote-debugging-pipe``
(JSON messages ended by NUL on descriptors 3 and 4), so a test can keep a
page open and read it again while it updates itself: no websocket library.

Screenshots are test artefacts, kept for people to look at: they go under
``$PENTOOLS_ARTEFACTS`` (default ``tmp/artefacts`` in the checkout, not in git).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT, require_program


def artefacts(name: str) -> Path:
    """The directory for the artefacts of one test."""
    root = Path(os.environ.get("PENTOOLS_ARTEFACTS", REPO_ROOT / "tmp" / "artefacts"))
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def flags(profile: Path, width: int = 1280, height: int = 2000) -> list[str]:
    return [
        require_program("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ]  # fmt: skip


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after load (scripts, if any, have run)."""
    result = subprocess.run(
        [*flags(profile), "--dump-dom", url], capture_output=True, timeout=120, check=True
    )
    return result.stdout.decode()


def screenshot(url: str, shot: Path, profile: Path, dark: bool = False, height: int = 2000) -> Path:
    """A PNG of the page, in the light theme or the dark one."""
    theme = ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"] if dark else []
    subprocess.run(
        [*flags(profile, height=height), *theme, f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
    return shot


class Chromium:
    """One headless Chromium showing one page, driven over the DevTools pipe."""

    def __init__(self, url: str, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def descriptors_3_and_4() -> None:  # runs in the child, before exec
            read = fcntl.fcntl(to_browser, fcntl.F_DUPFD_CLOEXEC, 10)
            write = fcntl.fcntl(from_browser, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(read, 3)  # inheritable: the only descriptors passed on but 0, 1, 2
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [*flags(profile), "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,  # our descriptors are not inheritable, except 3 and 4
            preexec_fn=descriptors_3_and_4,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events in between are dropped)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    return reply["result"]  # type: ignore[no-any-return]
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise AssertionError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raise AssertionError(f"chromium did not answer {method}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (run by DevTools, not the page)."""
        result = self.call(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll until `expression` is truthy in the page; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting in the page for {expression}")

    def close(self) -> None:
        for fd in (self._commands, self._replies):
            os.close(fd)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
