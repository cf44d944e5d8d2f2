"""Rollouts end to end, on real containers under a continuous request loop: 10% -> 50% ->
100% with pauses ends on the candidate with no failed call and each split within a few
points of its weight; a candidate that answers 500 to a third of its calls is aborted by
its analysis, with the figures in the reason, and every call is back on stable."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.conftest import Stack, eventually
from tests.e2e.test_deployments import DEPLOYMENTS, deploy, running_workload, token_for
from tests.e2e.test_workload_lifecycle import READY

# The candidate's /cgi-bin/env answers 500 to every third call (busybox httpd passes a CGI
# answer that starts with a status line as it is; it ignores a `Status:` header).
FLAKY = r"""
cat > /www/cgi-bin/env <<'CGI'
#!/bin/sh
n=$(cat /www/calls 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > /www/calls
if [ $((n % 3)) -eq 0 ]; then
  printf 'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
  echo "VERSION=3 failing"; exit 0
fi
echo "Content-Type: text/plain"; echo ""; env | sort
CGI
chmod +x /www/cgi-bin/env
exec /bin/sh /usr/local/bin/wapi-demo serve
"""


@dataclass
class Loop:
    """Four callers in a loop; each result is tagged with the phase the test is in."""

    client: httpx.AsyncClient
    url: str
    phase: str = "before"
    results: list[tuple[str, int, str]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self) -> None:
        while not self.stop.is_set():
            response = await self.client.get(self.url)
            text = response.text
            version = next((v for v in "123" if f"VERSION={v}" in text), "?")
            self.results.append((self.phase, response.status_code, version))

    def of(self, phase: str) -> list[tuple[int, str]]:
        return [(status, version) for p, status, version in self.results if p == phase]

    async def measure(self, phase: str, calls: int) -> Counter[str]:
        """Tag the next `calls` calls with `phase`; the versions that answered them."""
        self.phase = phase
        while len(self.of(phase)) < calls:  # noqa: ASYNC110  # counted by the callers
            await asyncio.sleep(0.1)
        self.phase = "between"
        return Counter(version for _, version in self.of(phase))


def share(versions: Counter[str]) -> float:
    """The candidate's share of the calls counted (a few more than asked: calls in flight)."""
    return versions["2"] / sum(versions.values())


async def rollout_of(stack: Stack, did: str, rid: str) -> dict[str, Any]:
    found: dict[str, Any] = (await stack.api.get(f"{DEPLOYMENTS}{did}/rollouts/{rid}/")).json()
    return found


async def at_step(stack: Stack, did: str, rid: str, step: int) -> dict[str, Any]:
    rollout: dict[str, Any] = await eventually(
        lambda: rollout_of(stack, did, rid),
        lambda r: r["currentStep"] == step or r["status"] in ("completed", "aborted"),
        120,
        f"rollout at step {step}",
    )
    assert rollout["currentStep"] == step, rollout
    await asyncio.sleep(1.5)  # every gateway reloads its routes twice a second
    return rollout


async def test_ten_fifty_hundred_with_pauses_and_no_failed_call(stack: Stack) -> None:
    v1, collection = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    token = await token_for(stack, did)
    v2, _ = await running_workload(stack, "2", collection)
    url = f"{stack.gateway_url}/api/v2/endpoints/deployments/{did}/cgi-bin/env"
    steps = [
        {"setWeight": 10},
        {"pause": {}},
        {"setWeight": 50},
        {"pause": {"durationSeconds": 2}},
        {"pause": {}},
    ]
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:
        loop = Loop(client, url)
        callers = [asyncio.create_task(loop.call()) for _ in range(4)]
        try:
            created = await stack.api.post(
                f"{DEPLOYMENTS}{did}/rollouts/",
                json={"workloadId": v2, "steps": steps, "keepPreviousSeconds": 2},
            )
            assert created.status_code == 202, created.text
            rid = created.json()["id"]
            assert created.json()["stableWorkloadId"] == v1
            await at_step(stack, did, rid, 1)
            during = (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()
            assert (during["rollout"]["id"], during["rollout"]["weight"]) == (rid, 10)
            assert during["workloadId"] == v1 and during["status"] == "running"
            at_ten = await loop.measure("10", 400)
            promote = f"{DEPLOYMENTS}{did}/rollouts/{rid}/promote/"
            assert (await stack.api.post(promote)).status_code == 200
            await at_step(stack, did, rid, 4)
            at_fifty = await loop.measure("50", 400)
            done = await stack.api.post(promote, json={"full": True})
            assert done.status_code == 200, done.text
            await eventually(
                lambda: rollout_of(stack, did, rid),
                lambda r: r["status"] == "completed",
                60,
                "rollout completed",
            )
            await asyncio.sleep(1.5)
            at_hundred = await loop.measure("100", 100)
        finally:
            loop.stop.set()
            await asyncio.gather(*callers)

    failures = [r for r in loop.results if r[1] != 200 or r[2] == "?"]
    assert failures == [], failures[:5]
    # One gateway process spreads calls without a session key exactly; a few points allowed.
    assert set(at_ten) == {"1", "2"} and abs(share(at_ten) - 0.10) <= 0.03, at_ten
    assert set(at_fifty) == {"1", "2"} and abs(share(at_fifty) - 0.50) <= 0.03, at_fifty
    assert set(at_hundred) == {"2"}, at_hundred
    deployment = (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()
    assert deployment["workloadId"] == v2 and deployment["rollout"] is None
    rollout = await rollout_of(stack, did, rid)
    assert (rollout["weight"], rollout["finishedAt"] is not None) == (100, True)
    trail = [(line["event"], line["weight"]) for line in rollout["history"]]
    assert trail[0] == ("rollout_started", 0) and trail[-1] == ("rollout_completed", 100)
    assert ("weight_set", 10) in trail and ("weight_set", 50) in trail
    assert [e for e, _ in trail].count("promoted") == 2
    await stack.wait_status(v1, "stopped", within=60)  # retired after keepPreviousSeconds
    query = {"resourceId": did, "limit": 100}
    audit = (await stack.api.get("/api/v2/auditEvents/", params=query)).json()["data"]
    actions = {record["action"] for record in audit}
    assert {"rollout.weight_set", "rollout.promoted", "rollout.rollout_completed"} <= actions


async def test_a_failing_candidate_is_aborted_by_analysis_and_stable_loses_nothing(
    stack: Stack,
) -> None:
    v1, collection = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    token = await token_for(stack, did)
    flaky = await stack.registered(
        "svc-3",
        collection,
        command=["sh", "-c", FLAKY],
        environmentVars=[{"name": "VERSION", "value": "3"}],
        readinessProbe=READY,
    )
    v3 = await stack.workload_of(flaky["id"], name="svc-3")
    await stack.wait_status(v3, "running")
    url = f"{stack.gateway_url}/api/v2/endpoints/deployments/{did}/cgi-bin/env"
    steps = [
        {"setWeight": 30},
        {"analysis": {"durationSeconds": 20, "maxErrorRate": 0.05, "minRequests": 5}},
        {"setWeight": 100},
    ]
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:
        loop = Loop(client, url, phase="rollout")
        callers = [asyncio.create_task(loop.call()) for _ in range(4)]
        try:
            created = await stack.api.post(
                f"{DEPLOYMENTS}{did}/rollouts/", json={"workloadId": v3, "steps": steps}
            )
            assert created.status_code == 202, created.text
            rid = created.json()["id"]
            rollout = await eventually(
                lambda: rollout_of(stack, did, rid),
                lambda r: r["status"] in ("completed", "aborted"),
                180,
                "rollout ended",
            )
            await asyncio.sleep(1.5)
            after = await loop.measure("after", 100)
        finally:
            loop.stop.set()
            await asyncio.gather(*callers)

    seen = Counter((version, status) for _, status, version in loop.results)
    assert rollout["status"] == "aborted" and rollout["weight"] == 0, (rollout["history"], seen)
    reason = rollout["reason"]
    assert reason.startswith("step 1: analysis failed: error rate "), reason
    assert "> maxErrorRate 5.00%" in reason and "measured: candidate " in reason, reason
    assert set(after) == {"1"}, after
    on_stable = [status for _, status, version in loop.results if version == "1"]
    assert on_stable and set(on_stable) == {200}
    on_candidate = Counter(status for _, status, version in loop.results if version == "3")
    assert on_candidate[500] > 0 and on_candidate[200] > 0, on_candidate
    deployment = (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()
    assert deployment["workloadId"] == v1
    events = [
        e["type"] for e in (await stack.api.get(f"{DEPLOYMENTS}{did}/events/")).json()["data"]
    ]
    assert {"rollout_started", "weight_set", "analysis_started", "rollout_aborted"} <= set(events)
