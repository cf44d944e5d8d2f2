"""How fast the console's pages render with 1,000 workloads in the catalog.

The API runs as in production, in a process of its own (`python -m cli api`, SQLite). The
catalog is filled through the same service functions the routes use (workloads, a registered
artifact, deployments with health checks and gateway calls in the audit log), so no workflow
or container runs: pages read the catalog, as they do in production. A signed-in client then
fetches each page in turn; every page is server-rendered from API calls made through the
typed client with the user's key (the workloads list makes one per row for ready replicas).
Printed: p50, p95 and the slowest per page against the 300 ms budget, and each page against
the API call it is built around.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
from _stack import ADMIN_KEY, READY_PROBE, WORKLOADS, Stack, percentile, running_stack

from catalog.tables import HealthCheck
from models.artifacts import ArtifactCreate
from models.audit import AuditEntry
from models.deployments import DeploymentCreate
from models.workloads import WorkloadCreate
from services import artifacts, audit, deployments
from services.bundles import BundleCatalog
from services.workloads import create_workload
from tests.factories import ADMIN

WORKLOAD_COUNT = 1000
DEPLOYMENTS = 5
CALLS_PER_DEPLOYMENT = 2000  # gateway calls over the last hour, in the audit log
BUDGET_MS = 300.0
WARMUP = 5
IMAGE = "localhost/wapi-demo:bench"  # never run: no engine is started


async def fill(stack: Stack) -> dict[str, str]:
    """1,000 workloads (five of a registered artifact, deployed); ids to visit."""
    bundles = BundleCatalog.load()
    body = stack.body("console", READY_PROBE) | {"description": "a benchmark workload"}
    now = datetime.now(UTC)
    async with stack.sessions() as session, session.begin():
        spec = body["artifact"]["spec"]
        registered = await artifacts.create_artifact(
            session,
            ArtifactCreate.model_validate({"name": "svc", "status": "registered", "spec": spec}),
            ADMIN,
        )
        served = []
        for index in range(WORKLOAD_COUNT - DEPLOYMENTS):
            data = WorkloadCreate.model_validate(body | {"name": f"console-{index:04d}"})
            await create_workload(session, data, ADMIN, bundles)
        for index in range(DEPLOYMENTS):
            workload = await create_workload(
                session,
                WorkloadCreate(name=f"served-{index}", artifact_id=registered.id),
                ADMIN,
                bundles,
            )
            deployment = await deployments.create_deployment(
                session, DeploymentCreate(name=f"prod-{index}", workload_id=workload.id), ADMIN
            )
            served.append((workload.id, deployment.id))
            for second in range(0, 3600, 10):
                at = now - timedelta(seconds=second)
                session.add(HealthCheck(deployment_id=deployment.id, checked_at=at, ok=True))
            await audit.append(
                session,
                [
                    AuditEntry(
                        at=now - timedelta(seconds=call * 3600 / CALLS_PER_DEPLOYMENT),
                        actor="app",
                        actor_kind="invoke_token",
                        action="deployment.invoke",
                        resource_type="deployment",
                        resource_id=deployment.id,
                        status_code=200 if call % 50 else 503,
                        latency_ms=5 + call % 40,
                    )
                    for call in range(CALLS_PER_DEPLOYMENT)
                ],
            )
    total = (await stack.api.get(WORKLOADS, params={"limit": 1})).json()["totalCount"]
    if total != WORKLOAD_COUNT:
        raise RuntimeError(f"expected {WORKLOAD_COUNT} workloads, the API counts {total}")
    workload_id, deployment_id = served[0]
    return {"workload": workload_id, "deployment": deployment_id, "artifact": registered.id}


async def signed_in(url: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=url, timeout=60)
    page = await browser.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no sign-in form")
    answer = await browser.post(
        "/console/login", data={"login_token": token.group(1), "api_key": ADMIN_KEY}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")
    return browser


async def timed(client: httpx.AsyncClient, path: str, n: int) -> list[float]:
    seen: list[float] = []
    for round_ in range(WARMUP + n):
        started = time.perf_counter()
        response = await client.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        if round_ >= WARMUP:
            seen.append(elapsed)
    return seen


async def main(requests: int, only: str) -> None:
    async with running_stack(containers=False, api_process=True) as stack:
        stack.image = IMAGE
        ids = await fill(stack)
        browser = await signed_in(stack.url)
        w, d, a = ids["workload"], ids["deployment"], ids["artifact"]
        pages = {
            "workloads list (20 rows)": ("/console/workloads", f"{WORKLOADS}?limit=20"),
            "workloads, filtered": (
                "/console/workloads?search=console-09&status=submitted",
                f"{WORKLOADS}?limit=20&search=console-09&status=submitted",
            ),
            "workload page": (f"/console/workloads/{w}", f"{WORKLOADS}{w}/"),
            "workload live part": (f"/console/workloads/{w}/live", f"{WORKLOADS}{w}/"),
            "artifacts list": ("/console/artifacts", "/api/v2/registry/artifacts/?limit=20"),
            "artifact page": (f"/console/artifacts/{a}", f"/api/v2/registry/artifacts/{a}/"),
            "deployments list": ("/console/deployments", "/api/v2/console/deployments/?limit=20"),
            "deployment page": (
                f"/console/deployments/{d}",
                f"/api/v2/console/deployments/{d}/",
            ),
            "traffic charts part": (
                f"/console/deployments/{d}/panels/traffic",
                f"/api/v2/console/deployments/{d}/stats/",
            ),
            "audit log": ("/console/audit", "/api/v2/auditEvents/?limit=50&orderBy=-seq"),
        }
        rows = []
        for name, (page, call) in pages.items():
            if only not in name:
                continue
            rendered = await timed(browser, page, requests)
            direct = await timed(stack.api, call, requests)
            rows.append((name, rendered, direct))
        await browser.aclose()

    ms = 1000.0
    print(f"Console pages with {WORKLOAD_COUNT} workloads in the catalog")
    print("  the API in its own process (SQLite); one signed-in client fetching each page")
    print(f"  {requests} times after {WARMUP} warm-up; 'API call' is the one request the page")
    print("  is built around, fetched the same way; times in ms")
    print(
        f"  {'page':<26}{'p50':>8}{'p95':>8}{'max':>8}{'API call p50':>14}{'page/API':>10}"
        f"{'under ' + str(int(BUDGET_MS)) + ' ms':>14}"
    )
    for name, rendered, direct in rows:
        p50 = statistics.median(rendered) * ms
        p95 = percentile(rendered, 0.95) * ms
        slowest = max(rendered) * ms
        api = statistics.median(direct) * ms
        verdict = "yes" if p95 < BUDGET_MS else "NO"
        print(
            f"  {name:<26}{p50:>8.1f}{p95:>8.1f}{slowest:>8.1f}{api:>14.1f}"
            f"{p50 / api:>9.1f}x{verdict:>14}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30, help="per page")
    parser.add_argument("--only", default="", help="pages whose name contains this")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.only))
