"""Replacements (and rollouts from an artifact) through the API, on both catalogs: a bad body
or an artifact of the wrong kind is refused naming the field, a workload that cannot be
replaced now answers 409, and a request Temporal does not take leaves nothing behind (no
replacement, no candidate workload). The catalog rows the workflow's activities write, and
the gateway's split of a workload's calls, are checked here too. (The workflow's steps:
tests/test_replacement_workflow.py; on real containers: tests/e2e/test_replacement.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.gateway.directory import ReplicaDirectory
from catalog.tables import Artifact, AuditEvent, Workload, WorkloadEvent, WorkloadReplacement
from models.artifacts import ArtifactCreate
from models.deployments import DeploymentCreate
from models.replacements import ReplacementCreate
from models.status import ReplacementStatus
from services import artifacts, deployments, replacements
from tests.factories import ADMIN, artifact, registered_workload


async def running_workload(app: FastAPI, *, draft: bool = False) -> tuple[str, str, str]:
    """A running workload (of a registered artifact, or a draft) and another artifact of the
    same kind to replace it with."""
    status = "draft" if draft else "registered"
    async with app.state.context.sessions() as session, session.begin():
        workload = await registered_workload(session, "live")
        if draft:
            made = await artifacts.create_artifact(
                session, ArtifactCreate.model_validate(artifact(name="d1")), ADMIN
            )
            workload.artifact_id = made.id
        workload.status = "running"
        new = await artifacts.create_artifact(
            session, ArtifactCreate.model_validate(artifact(name="v2", status=status)), ADMIN
        )
    return workload.id, workload.artifact_id, new.id


def url(workload_id: str) -> str:
    return f"/api/v2/console/workloads/{workload_id}/replacement/"


async def count(app: FastAPI, table: Any) -> int:
    async with app.state.context.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({}, ["body", "strategy"], "Field required"),
        ({"strategy": "blueGreen"}, ["body", "strategy"], "'rolling'"),
        ({"strategy": "rolling", "config": {"warmupDurationMinutes": -1}},
         ["body", "config", "warmupDurationMinutes"], "greater than or equal"),
        ({"strategy": "rolling", "config": {"keepOldVersionMinutes": 99999}},
         ["body", "config", "keepOldVersionMinutes"], "less than or equal"),
        ({"strategy": "rolling", "steps": [{"setWeight": 50}, {"pause": {}}]}, ["body"],
         "steps[1].pause.durationSeconds: a replacement's pause needs a duration"),
        ({"strategy": "rolling", "steps": [{"analysis": {"durationSeconds": 60,
                                                          "maxErrorRate": 0.1}}]},
         ["body"], "steps[0].analysis: the candidate takes no traffic yet"),
        ({"strategy": "rolling", "readyTimeoutSeconds": 0}, ["body", "readyTimeoutSeconds"],
         "greater than or equal"),
        ({"strategy": "rolling", "runtime": {"replicaCount": -1}},
         ["body", "runtime", "replicaCount"], "greater than or equal"),
    ],
)  # fmt: skip
async def test_bad_bodies_are_refused_naming_the_field(
    app: FastAPI, api: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], words: str
) -> None:
    workload_id, _, new = await running_workload(app)
    answer = await api.post(url(workload_id), json={"artifactId": new, **body})
    assert answer.status_code == 422, answer.text
    details = answer.json()["detail"]
    assert any(d["loc"] == loc and words in d["msg"] for d in details), details


async def test_the_artifact_must_be_of_the_workloads_kind_and_another(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workload_id, current, registered = await running_workload(app)
    async with app.state.context.sessions() as session, session.begin():
        draft = await artifacts.create_artifact(
            session, ArtifactCreate.model_validate(artifact(name="d")), ADMIN
        )
    for artifact_id, words in [
        (draft.id, "is draft but the workload runs a registered artifact"),
        (current, "the workload already runs artifact"),
        ("0123456789abcdef01234567", "does not exist or is not shared with you"),
    ]:
        body = {"artifactId": artifact_id, "strategy": "rolling"}
        answer = await api.post(url(workload_id), json=body)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail[0]["loc"] == ["body", "artifactId"] and words in detail[0]["msg"], detail
    # A draft workload moves to a draft, even the same one (to pick up its edits): refused
    # here only because Temporal is unreachable.
    draft_workload, draft_artifact, _ = await running_workload(app, draft=True)
    body = {"artifactId": draft_artifact, "strategy": "rolling"}
    assert (await api.post(url(draft_workload), json=body)).status_code == 503
    answer = await api.post(url(draft_workload), json={**body, "artifactId": registered})
    assert answer.status_code == 422 and "is registered but" in answer.text


async def test_a_workload_that_cannot_be_replaced_now_answers_409(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workload_id, _, new = await running_workload(app)
    body = {"artifactId": new, "strategy": "rolling"}
    async with app.state.context.sessions() as session, session.begin():
        row = await session.get(Workload, workload_id)
        assert row is not None
        row.status = "stopped"
    answer = await api.post(url(workload_id), json=body)
    assert answer.status_code == 409 and "is stopped" in answer.json()["message"]
    async with app.state.context.sessions() as session, session.begin():
        row = await session.get(Workload, workload_id)
        assert row is not None
        row.status = "running"
        deployment = await deployments.create_deployment(
            session, DeploymentCreate(name="prod", workload_id=workload_id), ADMIN
        )
    answer = await api.post(url(workload_id), json=body)
    assert answer.status_code == 409 and deployment.id in answer.json()["message"]
    assert "rollout" in answer.json()["message"]


async def test_a_replacement_temporal_does_not_take_leaves_nothing_behind(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workload_id, _, new = await running_workload(app)
    workloads_before = await count(app, Workload)
    events_before, audit_before = await count(app, WorkloadEvent), await count(app, AuditEvent)
    answer = await api.post(url(workload_id), json={"artifactId": new, "strategy": "rolling"})
    assert answer.status_code == 503, answer.text  # the app's Temporal is unreachable
    assert await count(app, WorkloadReplacement) == 0
    assert await count(app, Workload) == workloads_before  # no candidate left behind
    assert await count(app, WorkloadEvent) == events_before
    assert await count(app, AuditEvent) == audit_before + 1  # the refused request itself
    assert (await api.get(url(workload_id))).status_code == 404
    assert (await api.delete(url(workload_id))).status_code == 404


async def test_a_rollout_from_an_artifact_checks_it_and_leaves_nothing_when_refused(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    async with app.state.context.sessions() as session, session.begin():
        stable = await registered_workload(session, "stable")
        deployment = await deployments.create_deployment(
            session, DeploymentCreate(name="prod", workload_id=stable.id), ADMIN
        )
        draft = await artifacts.create_artifact(
            session, ArtifactCreate.model_validate(artifact(name="d")), ADMIN
        )
        registered = await artifacts.create_artifact(
            session, ArtifactCreate.model_validate(artifact(name="r", status="registered")), ADMIN
        )
    rollouts = f"/api/v2/console/deployments/{deployment.id}/rollouts/"
    both = await api.post(rollouts, json={"workloadId": stable.id, "artifactId": draft.id})
    assert both.status_code == 422 and "exactly one of workloadId and artifactId" in both.text
    runtime = await api.post(rollouts, json={"workloadId": stable.id, "runtime": {}})
    assert runtime.status_code == 422 and "only with artifactId" in runtime.text
    workloads_before = await count(app, Workload)
    drafted = await api.post(rollouts, json={"artifactId": draft.id})
    assert drafted.status_code == 409 and "draft" in drafted.json()["message"]
    missing = await api.post(rollouts, json={"artifactId": "0123456789abcdef01234567"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "artifactId"]
    body = {"artifactId": registered.id, "steps": [{"setWeight": 10}, {"pause": {}}]}
    assert (await api.post(rollouts, json=body)).status_code == 503  # Temporal unreachable
    assert await count(app, Workload) == workloads_before
    assert (await api.get(rollouts)).json()["totalCount"] == 0


async def test_steps_are_recorded_and_the_gateway_splits_the_workloads_calls(
    app: FastAPI,
) -> None:
    workload_id, previous, new = await running_workload(app)
    async with app.state.context.sessions() as session, session.begin():
        candidate = await registered_workload(session, "candidate")
        row = await replacements.begin(
            session,
            workload=await session.get_one(Workload, workload_id),
            candidate=candidate,
            data=ReplacementCreate.model_validate({"artifactId": new, "strategy": "rolling"}),
            actor="alice",
        )
    directory = ReplicaDirectory(app.state.context.sessions)
    trail: list[tuple[ReplacementStatus, int, str, int | None]] = [
        ("progressing", 50, "weight_set", 50),
        ("progressing", 50, "weight_set", 50),  # a retried activity: written once
        ("finalizing", 100, "switched", 100),
        ("finalizing", 0, "handed_back", None),
    ]
    for status, weight, event, split in trail:
        async with app.state.context.sessions() as session, session.begin():
            await replacements.record(
                session, replacement_id=row.id, status=status, step=None, weight=weight,
                event=event, message=f"{event} {weight}", actor="system", reason=None,
                switched=event == "switched",
            )  # fmt: skip
            if event == "handed_back":
                await replacements.hand_over(session, row.id)
        await directory.refresh()
        found = directory.routes.replacing.get(workload_id)
        assert (found.weight if found else None) == split
        assert found is None or found.candidate == candidate.id
    async with app.state.context.sessions() as session:
        done = await session.get_one(WorkloadReplacement, row.id)
        assert [line["event"] for line in done.history] == [
            "requested", "weight_set", "switched", "handed_back",
        ]  # fmt: skip
        assert done.switched_at is not None and done.finished_at is None
        moved = await session.get_one(Workload, workload_id)
        assert moved.artifact_id == new != previous
        assert (await session.get_one(Artifact, new)).status == "registered"
        kinds = list(
            await session.scalars(
                select(WorkloadEvent.type).where(WorkloadEvent.workload_id == workload_id)
            )
        )
        assert kinds[-3:] == [
            "replacement_weight_set", "replacement_switched", "replacement_handed_back",
        ]  # fmt: skip


async def test_a_workload_being_replaced_is_neither_stopped_nor_deleted(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workload_id, _, new = await running_workload(app)
    async with app.state.context.sessions() as session, session.begin():
        candidate = await registered_workload(session, "candidate")
        row = await replacements.begin(
            session,
            workload=await session.get_one(Workload, workload_id),
            candidate=candidate,
            data=ReplacementCreate.model_validate({"artifactId": new, "strategy": "rolling"}),
            actor="alice",
        )
    shown = await api.get(url(workload_id))
    assert (shown.status_code, shown.json()["id"]) == (200, row.id)
    for answer in (
        await api.post(f"/api/v2/console/workloads/{workload_id}/stop/"),
        await api.delete(f"/api/v2/console/workloads/{workload_id}/"),
        await api.post(url(workload_id), json={"artifactId": new, "strategy": "rolling"}),
    ):
        assert answer.status_code == 409, answer.text
        assert "replace" in answer.json()["message"]
