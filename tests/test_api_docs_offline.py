"""The API reference page loads in a browser that can reach nothing but this machine."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect
from temporalio.client import Client

from api.app import create_app
from config.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.support.browser import chromium, screenshots_dir
from tests.support.live_server import serve


async def test_the_api_reference_works_offline(
    tmp_path: Path, unreachable_temporal: Client
) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        bootstrap_admin_key=ADMIN_KEY,
    )
    app = create_app(settings, temporal_client=unreachable_temporal)
    operations = sum(len(ops) for ops in app.openapi()["paths"].values())
    shots = screenshots_dir(tmp_path)
    with serve(app) as url:
        async with chromium() as browser:
            page = await browser.page()
            await page.goto(f"{url}/docs")
            await expect(page.locator(".opblock").first).to_be_visible()
            assert await page.locator(".opblock").count() == operations
            await expect(page.locator(".opblock-summary-description").first).not_to_be_empty()
            await expect(page.get_by_text("Create a workload").first).to_be_visible()
            await page.screenshot(path=shots / "docs.png")
            assert browser.refused == []
            assert (await page.request.get(f"{url}/redoc")).status == 404
