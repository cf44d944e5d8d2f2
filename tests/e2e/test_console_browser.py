"""The console in a real Chromium against the live product (API, worker, Temporal, Podman):
an admin signs in, creates a draft, runs it and watches it reach running without a reload,
reads its logs, registers it, deploys it, invokes it and sees the call in the charts, swaps
the deployment to another workload, scales, starts and stops, and signs out; a viewer sees no
button that changes anything. The browser can reach nothing but this machine. Screenshots of
the main pages are saved (see `screenshots_dir`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack
from tests.support.browser import LocalBrowser, chromium, screenshots_dir

pytestmark = pytest.mark.timeout(600)
SLOW = 120_000  # ms: a container start or a swap on a busy 2-core machine


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(f"{url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.fill("input[name=api_key]", key)
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Workloads")


async def nothing_to_change(page: Page) -> None:
    """No form that changes something (every such form has the class `action`)."""
    await expect(page.locator("main")).to_be_visible()
    assert await page.locator("form.action").count() == 0, await page.content()
    assert await page.locator("[hx-post]:not(.invoke)").count() == 0


async def test_an_admin_runs_a_service_to_production_and_a_viewer_only_looks(
    stack: Stack, tmp_path: Path
) -> None:
    shots = screenshots_dir(tmp_path)
    viewer_key = (
        await stack.api.post(
            "/api/v2/apiKeys/", json={"name": "vera", "username": "vera", "role": "viewer"}
        )
    ).json()["key"]
    async with chromium() as browser:
        page = await browser.page()
        await sign_in(page, stack.url, ADMIN_KEY)

        # A draft artifact, from a YAML spec.
        await page.click("nav.sections >> text=Artifacts")
        await page.click("#new-artifact")
        await page.fill("#artifact-form input[name=name]", "hello-console")
        await page.fill(
            "#artifact-form textarea[name=spec]",
            f"""containerGroups:
  - containers:
      - imageUri: {stack.image}
        port: 8080
        command: [ticker, "0.5"]
        readinessProbe: {{path: /ready, periodSeconds: 1}}
""",
        )
        await page.click("#artifact-form button[type=submit]")
        await expect(page.locator("h1 .badge")).to_have_text("draft")
        await expect(page.locator("#spec")).to_contain_text("ticker")
        artifact_url = page.url
        await page.screenshot(path=shots / "artifact-draft.png", full_page=True)

        # Run it, and watch it become running on the same page, without a reload.
        await page.fill("#run-form input[name=name]", "hello-a")
        await page.click("#run-form button[type=submit]")
        await expect(page.locator("h1")).to_contain_text("hello-a")
        workload_url = page.url
        await page.evaluate("window.sameDocument = true")
        await expect(page.locator("#live h2 .badge")).to_have_text("running", timeout=SLOW)
        await expect(page.locator("#ready-count")).to_have_text("1/1 ready")
        assert await page.evaluate("window.sameDocument") is True
        await expect(page.locator("#replicas tbody tr")).to_have_count(1)
        await expect(page.locator("#logs")).to_contain_text("tick", timeout=SLOW)
        await expect(page.locator("#events")).to_contain_text("running")
        temporal_link = await page.locator("a.external").get_attribute("href") or ""
        assert re.search(r"/workflows/workload-[A-Za-z0-9]+$", temporal_link)
        await page.screenshot(path=shots / "workload.png", full_page=True)

        # Register the draft: version 1, and the workload becomes deployable.
        await page.goto(artifact_url)
        await page.click("#artifact-actions >> text=Register")
        await expect(page.locator(".flash")).to_contain_text("Registered as version 1")
        await expect(page.locator("#version")).to_have_text("v1")
        await expect(page.locator("#artifact-actions >> text=Register")).to_have_count(0)

        # Deploy it.
        await page.goto(workload_url)
        await page.fill("#deploy-form input[name=name]", "hello-prod")
        await page.click("#deploy-form button[type=submit]")
        await expect(page.locator("h1")).to_contain_text("hello-prod")
        deployment_url = page.url
        await expect(page.locator("#current-workload")).to_have_text("hello-a")
        # Its status is the workload's lifecycle; the health checks' verdict is apart.
        status = page.locator("#panel-status p .badge")
        await expect(status).to_have_attribute("data-status", "running", timeout=SLOW)
        health = page.locator("#health-status .badge")
        await expect(health).to_have_attribute("data-status", "healthy", timeout=SLOW)

        # Invoke it through the gateway, and see the call in the charts.
        await page.fill("#invoke-form input[name=path]", "cgi-bin/echo?via=console")
        await page.click("#invoke-form button[type=submit]")
        await expect(page.locator("#invoke-answer .answer")).to_have_attribute("data-status", "200")
        await expect(page.locator("#invoke-answer")).to_contain_text("via=console")
        total = page.locator("#traffic-summary strong")
        await expect(total).not_to_have_text("0", timeout=30_000)
        assert int(await total.inner_text()) >= 1
        assert await page.locator("#panel-traffic svg rect.bar-ok").count() >= 1

        # An invoke token, shown once, and the deployment shared with the viewer.
        await page.fill("#token-form input[name=name]", "ci")
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#new-token pre")).to_contain_text("wdt_")
        await page.fill("#share-form input[name=username]", "vera")
        await page.select_option("#share-form select[name=role]", "user")
        await page.click("#share-form button[type=submit]")
        await expect(page.locator("#roles")).to_contain_text("vera")
        await page.screenshot(path=shots / "deployment.png", full_page=True)

        # A second workload of version 1, and a swap to it, followed live.
        await page.goto(artifact_url)
        await page.fill("#run-form input[name=name]", "hello-b")
        await page.click("#run-form button[type=submit]")
        await expect(page.locator("h1")).to_contain_text("hello-b")
        await page.goto(deployment_url)
        candidate = page.locator("#swap-form option", has_text="hello-b")
        await page.select_option("#swap-form select", await candidate.get_attribute("value"))
        await page.click("#swap-form button[type=submit]")
        await expect(page.locator(".flash")).to_contain_text("Swap started")
        await expect(page.locator("#swaps tbody tr").first.locator(".badge")).to_have_text(
            "completed", timeout=SLOW
        )
        await expect(page.locator("#current-workload")).to_have_text("hello-b", timeout=30_000)
        await page.screenshot(path=shots / "deployment-swapped.png", full_page=True)

        # Scale the new workload live; start the old one again (the swap stopped it), then stop it.
        await page.click("#current-workload")
        await page.fill("#scale-form input[type=number]", "2")
        await page.click("#scale-form button[type=submit]")
        await expect(page.locator("#ready-count")).to_have_text("2/2 ready", timeout=SLOW)
        await page.goto(workload_url)
        await expect(page.locator("#live h2 .badge")).to_have_text("stopped", timeout=SLOW)
        await page.click("#lifecycle >> text=Start")
        await expect(page.locator("#live h2 .badge")).to_have_text("running", timeout=SLOW)
        await page.click("#lifecycle >> text=Stop")
        await expect(page.locator("#live h2 .badge")).to_have_text("stopped", timeout=SLOW)

        # The audit log: every action above, as the admin's API calls, and a valid chain.
        await page.click("nav.sections >> text=Audit")
        await expect(page.locator("#chain-valid")).to_be_visible()
        await page.fill("input[name=action]", "deployment.swap")
        await page.click("form.filters button")
        await expect(page.locator("#audit tbody")).to_contain_text("deployment.swap")
        await page.screenshot(path=shots / "audit.png", full_page=True)
        await page.click("nav.sections >> text=Workloads")
        await page.screenshot(path=shots / "workloads.png", full_page=True)

        await viewer_only_looks(browser, stack, viewer_key, deployment_url, workload_url, shots)

        await page.click(".who button")
        await expect(page).to_have_url(re.compile(r"/console/login"))
        await page.goto(f"{stack.url}/console/workloads")
        await expect(page).to_have_url(re.compile(r"/console/login"))
        assert browser.refused == []


async def share_with(stack: Stack, username: str, workload_url: str, deployment_url: str) -> None:
    """The owner shares the workload, its artifact and the deployment (`user`: read and use);
    a viewer key still changes nothing (docs/access.md)."""
    workload_id = workload_url.rstrip("/").rsplit("/", 1)[-1]
    deployment_id = deployment_url.rstrip("/").rsplit("/", 1)[-1]
    workload = (await stack.api.get(f"/api/v2/console/workloads/{workload_id}/")).json()
    roles = {"roles": [{"username": username, "role": "user"}]}
    for path in (
        f"/api/v2/registry/artifacts/{workload['artifactId']}/",
        f"/api/v2/console/workloads/{workload_id}/",
        f"/api/v2/console/deployments/{deployment_id}/",
    ):
        answer = await stack.api.patch(f"{path}sharedRoles/", json=roles)
        assert answer.status_code == 204, answer.text


async def viewer_only_looks(
    browser: LocalBrowser,
    stack: Stack,
    key: str,
    deployment_url: str,
    workload_url: str,
    shots: Path,
) -> None:
    await share_with(stack, "vera", workload_url, deployment_url)
    page = await browser.page()
    await sign_in(page, stack.url, key)
    await expect(page.locator(".who .role")).to_have_text("viewer")
    await expect(page.locator("nav.sections >> text=Audit")).to_have_count(0)
    await nothing_to_change(page)
    await page.goto(workload_url)
    await expect(page.locator("#live h2 .badge")).to_be_visible()
    await nothing_to_change(page)
    await page.click("dl.facts a >> nth=0")  # the workload's artifact
    await expect(page.locator("#spec")).to_be_visible()
    await nothing_to_change(page)
    await page.goto(deployment_url)
    await expect(page.locator("#panel-status")).to_be_visible()
    await nothing_to_change(page)
    await expect(page.locator("#panel-tokens")).to_have_count(0)
    await page.screenshot(path=shots / "deployment-as-viewer.png", full_page=True)
    for section in ("Deployments", "Artifacts", "Collections"):
        await page.click(f"nav.sections >> text={section}")
        await nothing_to_change(page)
    await page.context.close()
