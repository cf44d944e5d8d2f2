"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright, that can reach only
this machine: every request to another host is refused and remembered, so a test can assert
that a page needed nothing from outside."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

CHROMIUM = os.environ.get("WAPI_TEST_CHROMIUM", "/usr/bin/chromium")
# The machine has no network beyond the package registries: nothing in the background.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass
class LocalBrowser:
    browser: Browser
    refused: list[str] = field(default_factory=list)  # URLs the pages asked for elsewhere

    async def page(self) -> Page:
        """A page in a context of its own (its own cookies: one signed-in user each)."""
        context = await self.browser.new_context(viewport={"width": 1360, "height": 900})
        await context.route("**/*", self._only_this_machine)
        page = await context.new_page()
        page.set_default_timeout(30_000)
        # Confirmation dialogs (data-confirm) are answered yes.
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        return page

    async def _only_this_machine(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            self.refused.append(route.request.url)
            await route.abort("blockedbyclient")


def screenshots_dir(tmp_path: Path) -> Path:
    """`WAPI_SCREENSHOTS_DIR` if set (CI keeps it as an artifact), else the test's tmp dir."""
    chosen = os.environ.get("WAPI_SCREENSHOTS_DIR")
    directory = Path(chosen) if chosen else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@asynccontextmanager
async def chromium() -> AsyncIterator[LocalBrowser]:
    """The system Chromium with a new, empty profile (Playwright gives each launch its own)."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once, before anything runs)
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(scripts/ensure-system-packages.sh), or set WAPI_TEST_CHROMIUM",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        try:
            yield LocalBrowser(browser)
        finally:
            await browser.close()
