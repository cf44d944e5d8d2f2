"""Rollouts through the API and in the catalog, on both catalogs: bad steps are refused with
the field named and nothing written, the rows the workflow's activities write (history,
event, audit record; `completed` moves the deployment), and the analysis verdict with its
figures. (The steps in the workflow: tests/test_rollout_workflow.py; on real containers
through the gateway: tests/e2e/test_rollouts.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from catalog.tables import AuditEvent, Deployment, DeploymentEvent, DeploymentRollout
from models.deployments import DeploymentCreate
from models.rollouts import AnalysisStep, RolloutStep
from services import deployments, rollouts, traffic
from services.traffic import MinuteOf, Traffic
from tests.factories import ADMIN, registered_workload


async def deployment_and_candidate(app: FastAPI) -> tuple[str, str, str]:
    async with app.state.context.sessions() as session, session.begin():
        stable = await registered_workload(session, "stable")
        candidate = await registered_workload(session, "candidate")
        row = await deployments.create_deployment(
            session, DeploymentCreate(name="prod", workload_id=stable.id), ADMIN
        )
    return row.id, stable.id, candidate.id


def url(deployment_id: str) -> str:
    return f"/api/v2/console/deployments/{deployment_id}/rollouts/"


@pytest.mark.parametrize(
    ("steps", "loc", "words"),
    [
        ([{"setWeight": 10, "pause": {}}], ["body", "steps", 0], "exactly one"),
        ([{}], ["body", "steps", 0], "exactly one"),
        ([{"setWeight": 101}], ["body", "steps", 0, "setWeight"], "less than or equal"),
        ([{"pause": {"durationSeconds": 0}}], ["body", "steps", 0, "pause", "durationSeconds"],
         "greater than or equal"),
        ([{"analysis": {"durationSeconds": 60}}], ["body", "steps", 0, "analysis"],
         "at least one threshold"),
        ([{"analysis": {"durationSeconds": 60, "maxErrorRate": 0.1}}], ["body"],
         "steps[0].analysis: the candidate takes no traffic yet"),
        ([{"setWeight": 10}, {"wait": 5}], ["body", "steps", 1, "wait"], "Extra inputs"),
    ],
)  # fmt: skip
async def test_bad_steps_are_refused_naming_the_field(
    app: FastAPI, api: httpx.AsyncClient, steps: list[Any], loc: list[Any], words: str
) -> None:
    deployment_id, _, candidate = await deployment_and_candidate(app)
    answer = await api.post(url(deployment_id), json={"workloadId": candidate, "steps": steps})
    assert answer.status_code == 422, answer.text
    details = answer.json()["detail"]
    assert any(d["loc"] == loc and words in d["msg"] for d in details), details


async def test_a_rollout_temporal_does_not_take_writes_nothing(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    deployment_id, _, candidate = await deployment_and_candidate(app)
    body = {"workloadId": candidate, "steps": [{"setWeight": 10}, {"pause": {}}]}
    answer = await api.post(url(deployment_id), json=body)
    assert answer.status_code == 503, answer.text  # the app's Temporal is unreachable
    assert (await api.get(url(deployment_id))).json()["totalCount"] == 0
    missing = await api.get(url(deployment_id) + "0123456789abcdef01234567/")
    assert missing.status_code == 404
    assert (await api.post(url("0123456789abcdef01234567"), json=body)).status_code == 404


async def test_steps_are_recorded_once_and_completion_moves_the_deployment(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    deployment_id, stable, candidate = await deployment_and_candidate(app)
    steps = [RolloutStep(set_weight=10), RolloutStep(set_weight=50)]
    sessions = app.state.context.sessions
    async with sessions() as session, session.begin():
        await rollouts.begin(
            session, deployment_id=deployment_id, rollout_id="r1", stable=stable,
            candidate=candidate, steps=steps, options={"readyTimeoutSeconds": 60}, actor="alice",
        )  # fmt: skip
    record: dict[str, Any] = {
        "deployment_id": deployment_id, "rollout_id": "r1", "status": "progressing", "step": 0,
        "weight": 10, "event": "weight_set", "message": "step 0: 10%", "actor": "system",
        "reason": None,
    }  # fmt: skip
    for _ in range(2):  # a retried activity writes nothing twice
        async with sessions() as session, session.begin():
            await rollouts.record(session, **record)
    async with sessions() as session, session.begin():
        await rollouts.record(
            session, **{**record, "status": "completed", "step": None, "weight": 100,
                        "event": "rollout_completed", "message": "done"}
        )  # fmt: skip
    shown = (await api.get(url(deployment_id) + "r1/")).json()
    assert (shown["status"], shown["weight"], shown["currentStep"]) == ("completed", 100, None)
    # Every key of a step is on the wire; exactly one is not null.
    assert shown["steps"] == [
        {"setWeight": weight, "pause": None, "analysis": None} for weight in (10, 50)
    ]
    assert [line["event"] for line in shown["history"]] == [
        "rollout_started",
        "weight_set",
        "rollout_completed",
    ]
    assert shown["finishedAt"] is not None and shown["readyTimeoutSeconds"] == 60
    async with sessions() as session:
        moved = await session.get(Deployment, deployment_id)
        assert moved is not None and moved.workload_id == candidate
        events = await session.scalars(
            select(DeploymentEvent.type).where(DeploymentEvent.deployment_id == deployment_id)
        )
        assert [e for e in events if e.startswith(("rollout", "weight"))] == [
            "rollout_started",
            "weight_set",
            "rollout_completed",
        ]
        audited = await session.scalar(
            select(func.count()).where(
                AuditEvent.resource_id == deployment_id, AuditEvent.action.like("rollout.%")
            )
        )
        assert audited == 3
    # Deleting the deployment forgets its rollouts.
    async with sessions() as session, session.begin():
        await deployments.forget_deployment(session, deployment_id)
    async with sessions() as session:
        assert await session.get(DeploymentRollout, "r1") is None


def calls(*pairs: tuple[int, float]) -> Traffic:
    counts = Traffic()
    for status, ms in pairs:
        counts.add_call(status, ms / 1000)
    return counts


def test_analysis_names_each_threshold_crossed_with_the_figures() -> None:
    analysis = AnalysisStep(
        duration_seconds=60, min_requests=5, max_error_rate=0.1, max_p95_latency_ratio=2
    )
    stable = calls(*[(200, 10)] * 20)
    healthy = calls(*[(200, 12)] * 10)
    passed, summary = rollouts.judge(analysis, healthy, stable)
    assert passed and "candidate 10 calls, 0 5xx (0.00%)" in summary
    failing = calls(*[(200, 50)] * 6, *[(500, 50)] * 4)
    passed, summary = rollouts.judge(analysis, failing, stable)
    assert not passed
    assert summary.startswith("error rate 40.00% > maxErrorRate 10.00%; p95 ")
    assert "maxP95LatencyRatio 2 x stable's" in summary
    assert "candidate 10 calls, 4 5xx (40.00%)" in summary and "stable 20 calls" in summary
    passed, summary = rollouts.judge(analysis, calls((200, 1)), stable)
    assert not passed and summary.startswith("1 candidate calls < minRequests 5")


async def test_workload_traffic_adds_up_every_process_and_minute(app: FastAPI) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    async with app.state.context.sessions() as session, session.begin():
        for writer in ("p1", "p2"):
            rows = [
                MinuteOf("w1", minute, calls((200, 5), (500, 9))),
                MinuteOf("w1", minute - timedelta(minutes=1), calls((200, 5))),
                MinuteOf("w2", minute, calls((200, 5))),
            ]
            await traffic.save(session, writer, rows, "workload")
    async with app.state.context.sessions() as session:
        total = await traffic.workload_minutes(session, "w1", minute, minute)
    assert (total.requests, total.server_errors) == (4, 2)


async def test_a_candidate_in_a_rollout_is_not_deployed_elsewhere_nor_deleted(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    deployment_id, stable, candidate = await deployment_and_candidate(app)
    async with app.state.context.sessions() as session, session.begin():
        await rollouts.begin(
            session, deployment_id=deployment_id, rollout_id="r1", stable=stable,
            candidate=candidate, steps=[], options={}, actor="alice",
        )  # fmt: skip
    elsewhere = await api.post(
        "/api/v2/console/deployments/", json={"name": "other", "workloadId": candidate}
    )
    assert elsewhere.status_code == 409, elsewhere.text
    assert f"rollout of deployment '{deployment_id}'" in elsewhere.json()["message"]
    deleted = await api.delete(f"/api/v2/console/workloads/{candidate}/")
    assert deleted.status_code == 409 and deployment_id in deleted.json()["message"]
    shown = (await api.get(f"/api/v2/console/deployments/{deployment_id}/")).json()
    assert (shown["rollout"]["id"], shown["rollout"]["status"]) == ("r1", "starting")
