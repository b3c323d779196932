"""Shared fixtures of the browser tests: one headless Chromium for the whole session.

These tests are not part of `make test` (whose testpaths are tests, solutions and book):
run them with `make browser-test` (see README.md in this folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

# The fixture notebooks are opened in JupyterLab by the tests, not run by nbval.
collect_ignore_glob = ["notebooks/*"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, with a fresh temporary profile (Playwright's default)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian's package)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS:
        terminalreporter.section("screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))
