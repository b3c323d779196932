"""Helpers shared by the browser tests (paths, ports, screenshots, Chromium options)."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.request
from pathlib import Path

# The repository whose _toc.yml, sources and _build/html are tested (another book: set it).
ROOT = Path(os.environ.get("BROWSER_TEST_ROOT") or Path(__file__).resolve().parent.parent)
ARTIFACTS = ROOT / "_build" / "browser-test"
CHROMIUM = (
    os.environ.get("BROWSER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
# Options for root on a machine without a display or a network: no sandbox (it needs
# user namespaces), no GPU, and none of the background traffic of a new profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SCREENSHOTS: list[Path] = []

# Requests to the loopback servers of the tests never go through a proxy.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def screenshot(page, name: str, **kwargs) -> Path:
    """Save a PNG of the page as _build/browser-test/<name>.png and list it in the summary."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    SCREENSHOTS.append(path)
    return path


class Recorder:
    """Console errors, uncaught exceptions and failed or off-site requests of one page.

    Every request that leaves ``allowed_origin`` is aborted and recorded: the book and
    JupyterLab must work without a network.
    """

    def __init__(self, page, allowed_origin: str, context=None):
        self.origin = allowed_origin.rstrip("/")
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.offsite: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        (context or page).route("**/*", self._route)

    def _console(self, message) -> None:
        if message.type == "error":
            location = message.location or {}
            self.console_errors.append(f"{message.text} ({location.get('url', '')})")

    def _request_failed(self, request) -> None:
        if not request.url.startswith(self.origin + "/"):
            return  # recorded as off-site when it was aborted
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.request.method} {response.url}: HTTP {response.status}")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith((self.origin + "/", "data:", "blob:")) or url == self.origin:
            route.continue_()
        else:
            self.offsite.append(url)
            route.abort("blockedbyclient")

    def problems(self) -> list[str]:
        return (
            [f"console error: {e}" for e in self.console_errors]
            + [f"uncaught exception: {e}" for e in self.page_errors]
            + [f"failed request: {e}" for e in self.failed]
            + [f"off-site request (the page must work offline): {u}" for u in self.offsite]
        )
