"""A rollout paused until promoted survives its worker killed with SIGKILL and the Temporal
server restarted on its database: the gateway keeps splitting calls meanwhile (it reads the
catalog, not Temporal), and a `promote` sent afterwards carries the rollout to its end."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.service import RPCError

from tests.e2e.conftest import eventually
from tests.e2e.test_deployments import DEPLOYMENTS, deploy, running_workload, token_for
from tests.e2e.test_faults import FaultStack, connect, faults
from tests.e2e.test_rollouts import Loop, rollout_of, share
from workflows.deployment_contract import QUERY_ROLLOUT, RolloutView, deployment_workflow_id

__all__ = ["faults"]  # the fixture, used here


async def test_a_paused_rollout_survives_a_killed_worker_and_a_temporal_restart(
    faults: FaultStack,
) -> None:
    stack = faults.stack
    first = faults.worker()
    v1, collection = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    token = await token_for(stack, did)
    v2, _ = await running_workload(stack, "2", collection)
    url = f"{stack.gateway_url}/api/v2/endpoints/deployments/{did}/cgi-bin/env"
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"durationSeconds": 3}}]
    created = await stack.api.post(
        f"{DEPLOYMENTS}{did}/rollouts/", json={"workloadId": v2, "steps": steps}
    )
    assert created.status_code == 202, created.text
    rid = created.json()["id"]
    await eventually(
        lambda: rollout_of(stack, did, rid), lambda r: r["currentStep"] == 1, 120, "paused"
    )
    await asyncio.sleep(1.5)  # the gateways follow the weight

    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:
        loop = Loop(client, url, phase="outage")
        callers = [asyncio.create_task(loop.call()) for _ in range(2)]
        try:
            first.kill()
            faults.server.stop()
            await asyncio.sleep(2)
            during = await loop.measure("outage", 200)
            faults.server.start()
            temporal = await connect(faults.server)
            faults.worker()
            handle = temporal.get_workflow_handle(deployment_workflow_id(did))

            async def answered() -> RolloutView | None:
                try:  # a query needs a worker: one is polling once it answers
                    return await asyncio.wait_for(
                        handle.query(QUERY_ROLLOUT, result_type=RolloutView), 5
                    )
                except (TimeoutError, RPCError):
                    return None

            seen = await eventually(answered, lambda v: v is not None, 120, "a worker")
            assert (seen.step, seen.step_kind, seen.weight) == (1, "pause", 20)
            still = await rollout_of(stack, did, rid)
            assert (still["status"], still["currentStep"], still["weight"]) == (
                "progressing",
                1,
                20,
            )
            promote = f"{DEPLOYMENTS}{did}/rollouts/{rid}/promote/"

            answer = await stack.api.post(promote)
            assert answer.status_code == 200, answer.text
            done = await eventually(
                lambda: rollout_of(stack, did, rid),
                lambda r: r["status"] == "completed",
                120,
                "rollout completed",
            )
            await asyncio.sleep(1.5)
            after = await loop.measure("after", 50)
        finally:
            loop.stop.set()
            await asyncio.gather(*callers)

    failures = [r for r in loop.results if r[1] != 200 or r[2] == "?"]
    assert failures == [], failures[:5]
    assert abs(share(during) - 0.20) <= 0.03, during  # split kept with no worker, no Temporal
    assert set(after) == {"2"}, after
    assert done["weight"] == 100
    events = [line["event"] for line in done["history"]]
    assert events.count("promoted") == 1 and events[-1] == "rollout_completed", events
    assert (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()["workloadId"] == v2
