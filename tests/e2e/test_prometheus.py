"""deploy/observability/ against a real Prometheus: it scrapes a running API and gateway with the
repository's configuration, and every dashboard query and every alert's signal returns data.
The alerts whose condition the test can bring about for real (a degraded deployment, an errored
workload, a crash loop, gateway 5xx) must also hold as written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack, eventually
from tests.e2e.test_deployments import DEPLOYMENTS, running_workload
from tests.support.prometheus import (
    alert_rules,
    alert_signal,
    dashboard_queries,
    grafana_to_promql,
    prometheus_server,
    scrape_config,
)

# Alerts the test makes true; the audit alerts need a catalog that refuses writes, which
# alerts.test.yml covers with promtool instead.
MADE_TRUE = {
    "WapiDeploymentDegraded",
    "WapiWorkloadErrored",
    "WapiWorkloadCrashLooping",
    "WapiGateway5xxRate",
}


async def query(prometheus: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    answer = await prometheus.get("/api/v1/query", params={"query": promql})
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", (promql, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def returns_data(prometheus: httpx.AsyncClient, promql: str, what: str) -> None:
    await eventually(lambda: query(prometheus, promql), bool, 60, f"{what}: {promql}")


async def _call_steadily(
    stack: Stack, deployment_id: str, errored: str, until: asyncio.Event
) -> None:
    while not until.is_set():
        call = await stack.invoke.get(f"/api/v2/endpoints/deployments/{deployment_id}/")
        assert call.status_code == 200, call.text
        failed = await stack.invoke.get(f"/api/v2/endpoints/workloads/{errored}/")
        assert failed.status_code >= 500, failed.text
        await asyncio.sleep(0.5)


async def _check_queries(prometheus: httpx.AsyncClient, deployment_id: str) -> None:
    """Both targets are up, every dashboard query and alert signal returns data, and the alerts
    the test brings about hold."""
    targets = await eventually(
        lambda: query(prometheus, 'up{job=~"wapi-.*"} == 1'),
        lambda found: len(found) == 2,
        60,
        "both targets up",
    )
    assert {target["metric"]["job"] for target in targets} == {"wapi-api", "wapi-gateway"}
    for title, expr in dashboard_queries():
        await returns_data(prometheus, grafana_to_promql(expr, deployment_id), f"panel {title!r}")
    for rule in alert_rules():
        await returns_data(prometheus, alert_signal(rule["expr"]), rule["alert"])
        if rule["alert"] in MADE_TRUE:
            await returns_data(prometheus, rule["expr"], f"{rule['alert']} to hold")


@pytest.mark.timeout(300)
async def test_prometheus_scrapes_the_product_and_every_query_answers(
    stack: Stack, tmp_path: Path
) -> None:
    # A deployment that is called and whose health checks fail (degraded).
    workload_id, _ = await running_workload(stack, "v1")
    created = await stack.api.post(
        DEPLOYMENTS,
        json={
            "name": "prod",
            "workloadId": workload_id,
            "health": {"path": "/missing", "intervalSeconds": 1, "failureThreshold": 2},
            "maxBodyBytes": 1024,
        },
    )
    assert created.status_code == 201, created.text
    deployment_id = created.json()["id"]
    errored = (await stack.create("no-image", imageUri="localhost/wapi-no-such-image:1"))["id"]

    config = scrape_config(
        tmp_path,
        {"wapi-api": stack.url.removeprefix("http://"),
         "wapi-gateway": stack.gateway_url.removeprefix("http://")},
        ADMIN_KEY,  # an admin key sees the per-resource series, as the metrics token does
    )  # fmt: skip
    with prometheus_server(tmp_path, config) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as prometheus:
            # Created once Prometheus scrapes, so that it sees the restarts happen: it serves
            # 4 s, long enough to count as ready (no errored crash loop), exits, is restarted,
            # and so on: the flapping the alert is for.
            crashing = (await stack.create("flapping", command=["exit-after", "4", "3"]))["id"]
            await stack.wait_status(errored, "errored")
            await eventually(
                lambda: stack.api.get(f"{DEPLOYMENTS}{deployment_id}/"),
                lambda answer: answer.json()["health"]["status"] == "degraded",
                60,
                "the deployment to be degraded",
            )
            # A call it refuses (413, a gateway failure), then calls through the deployment
            # (2xx) and to the errored workload (5xx) for as long as the queries are checked: a
            # rate needs two samples of a series, and the first scrape may come late.
            large = await stack.invoke.post(
                f"/api/v2/endpoints/deployments/{deployment_id}/", content=b"x" * 2048
            )
            assert large.status_code == 413, large.text
            until = asyncio.Event()
            calling = asyncio.create_task(_call_steadily(stack, deployment_id, errored, until))
            try:
                await _check_queries(prometheus, deployment_id)
            finally:
                until.set()
                await calling
            # They name what they are about.
            expressions = {rule["alert"]: rule["expr"] for rule in alert_rules()}
            for alert, label, expected in (
                ("WapiDeploymentDegraded", "deployment", deployment_id),
                ("WapiWorkloadErrored", "workload", errored),
                ("WapiWorkloadCrashLooping", "workload", crashing),
            ):
                found = await query(prometheus, expressions[alert])
                assert [series["metric"][label] for series in found] == [expected], alert
