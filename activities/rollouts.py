"""Activities of a deployment's rollouts: the catalog rows of each step and decision, and the
analysis of the candidate's calls against the stable workload's, as the gateways counted them.

A mixin of `DeploymentActivities` (the worker registers its methods with the rest)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from services import rollouts, traffic
from workflows.deployment_contract import (
    ACTIVITY_ANALYZE_ROLLOUT,
    ACTIVITY_BEGIN_ROLLOUT,
    ACTIVITY_RECORD_ROLLOUT,
    AnalyzeInput,
    AnalyzeResult,
    BeginRolloutInput,
    RolloutRecordInput,
)

# Gateways write their counts every few seconds: the analysis reads this much later.
FLUSH_ALLOWANCE_SECONDS = 6.0


class RolloutActivities:
    sessions: async_sessionmaker[AsyncSession]

    @activity.defn(name=ACTIVITY_BEGIN_ROLLOUT)
    async def begin_rollout(self, input: BeginRolloutInput) -> None:
        async with self.sessions() as session, session.begin():
            await rollouts.begin(
                session,
                deployment_id=input.deployment_id,
                rollout_id=input.rollout_id,
                stable=input.stable_workload_id,
                candidate=input.candidate_workload_id,
                steps=input.steps,
                options={
                    "readyTimeoutSeconds": input.ready_timeout_seconds,
                    "keepPreviousSeconds": input.keep_previous_seconds,
                },
                actor=input.actor,
            )

    @activity.defn(name=ACTIVITY_RECORD_ROLLOUT)
    async def record_rollout(self, input: RolloutRecordInput) -> None:
        async with self.sessions() as session, session.begin():
            await rollouts.record(
                session,
                deployment_id=input.deployment_id,
                rollout_id=input.rollout_id,
                status=input.status,
                step=input.step,
                weight=input.weight,
                event=input.event,
                message=input.message,
                actor=input.actor,
                reason=input.reason,
            )

    @activity.defn(name=ACTIVITY_ANALYZE_ROLLOUT)
    async def analyze_rollout(self, input: AnalyzeInput) -> AnalyzeResult:
        """Candidate and stable calls in the minutes the window touches (the gateways count
        by minute), once the gateways have written the window's last seconds."""
        await asyncio.sleep(FLUSH_ALLOWANCE_SECONDS)
        since = input.since.replace(second=0, microsecond=0)
        async with self.sessions() as session:
            candidate = await traffic.workload_minutes(
                session, input.candidate_workload_id, since, input.until
            )
            stable = await traffic.workload_minutes(
                session, input.stable_workload_id, since, input.until
            )
        passed, summary = rollouts.judge(input.analysis, candidate, stable)
        return AnalyzeResult(passed=passed, summary=summary)
