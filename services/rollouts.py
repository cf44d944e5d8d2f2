"""Rollouts in the catalog: reads, the rows the deployment workflow writes at each step and
decision (with a history line, an event and an audit record), and the analysis verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Deployment, DeploymentRollout, utcnow
from models.audit import AuditEntry
from models.rollouts import AnalysisStep, RolloutStep
from models.status import ROLLOUT_ACTIVE, RolloutStatus
from services import audit, deployments
from services.errors import NotFoundError
from services.listing import PageRequest, fetch_page
from services.traffic import Traffic, quantile_ms

SYSTEM_ACTORS = ("system", "analysis")


def wire_steps(steps: Sequence[RolloutStep]) -> list[dict[str, Any]]:
    return [step.model_dump(mode="json", by_alias=True, exclude_none=True) for step in steps]


async def get_rollout(
    session: AsyncSession, deployment_id: str, rollout_id: str
) -> DeploymentRollout:
    row = await session.get(DeploymentRollout, rollout_id)
    if row is None or row.deployment_id != deployment_id:
        raise NotFoundError("rollout", rollout_id)
    return row


async def list_rollouts(
    session: AsyncSession, deployment_id: str, page: PageRequest
) -> tuple[list[DeploymentRollout], int]:
    statement = select(DeploymentRollout).where(DeploymentRollout.deployment_id == deployment_id)
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys={"createdAt": DeploymentRollout.created_at},
        default_order=[DeploymentRollout.created_at.desc()],
        tiebreak=DeploymentRollout.id,
    )


async def active_rollouts(
    session: AsyncSession, deployment_ids: list[str]
) -> dict[str, DeploymentRollout]:
    rows = await session.scalars(
        select(DeploymentRollout).where(
            DeploymentRollout.deployment_id.in_(set(deployment_ids)),
            DeploymentRollout.status.in_(ROLLOUT_ACTIVE),
        )
    )
    return {row.deployment_id: row for row in rows}


async def begin(
    session: AsyncSession,
    *,
    deployment_id: str,
    rollout_id: str,
    stable: str,
    candidate: str,
    steps: Sequence[RolloutStep],
    options: dict[str, Any],
    actor: str,
) -> None:
    """Write the rollout as `starting` (once: a retried activity finds it written)."""
    if await session.get(DeploymentRollout, rollout_id) is not None:
        return
    message = f"rollout to workload {candidate} in {len(steps)} steps requested by {actor}"
    session.add(
        DeploymentRollout(
            id=rollout_id,
            deployment_id=deployment_id,
            stable_workload_id=stable,
            candidate_workload_id=candidate,
            steps=wire_steps(steps),
            status="starting",
            weight=0,
            options=options,
            history=[history_line("rollout_started", message, None, 0, actor)],
            requested_by=actor,
        )
    )
    await _note(session, deployment_id, rollout_id, "rollout_started", message, actor, "starting")


async def record(
    session: AsyncSession,
    *,
    deployment_id: str,
    rollout_id: str,
    status: RolloutStatus,
    step: int | None,
    weight: int,
    event: str,
    message: str,
    actor: str,
    reason: str | None,
) -> None:
    """A step or decision. `completed` moves the deployment to the candidate in the same
    transaction, so a gateway sees either the split or the candidate alone, never neither."""
    row = await session.get(DeploymentRollout, rollout_id)
    if row is None:
        return
    line = history_line(event, message, step, weight, actor)
    if repeats_last(row.history, line):
        return
    now = utcnow()
    row.status, row.current_step, row.weight, row.updated_at = status, step, weight, now
    row.history = [*row.history, line]
    if reason is not None:
        row.reason = reason
    if status not in ROLLOUT_ACTIVE:
        row.finished_at = now
    if status == "completed":
        deployment = await session.get(Deployment, deployment_id)
        if deployment is not None:
            deployment.workload_id = row.candidate_workload_id
            deployment.updated_at = now
    await _note(session, deployment_id, rollout_id, event, message, actor, status, step, weight)


def judge(analysis: AnalysisStep, candidate: Traffic, stable: Traffic) -> tuple[bool, str]:
    """Whether the candidate's calls pass the analysis, and the figures that say so."""
    c_rate, s_rate = _error_rate(candidate), _error_rate(stable)
    c_p95, s_p95 = quantile_ms(candidate.histogram, 0.95), quantile_ms(stable.histogram, 0.95)
    crossed: list[str] = []
    if candidate.requests < analysis.min_requests:
        crossed.append(
            f"{candidate.requests} candidate calls < minRequests {analysis.min_requests}"
        )
    if c_rate is not None:
        if analysis.max_error_rate is not None and c_rate > analysis.max_error_rate:
            crossed.append(f"error rate {c_rate:.2%} > maxErrorRate {analysis.max_error_rate:.2%}")
        increase = analysis.max_error_rate_increase
        if increase is not None and s_rate is not None and c_rate - s_rate > increase:
            crossed.append(
                f"error rate {c_rate:.2%} exceeds stable's {s_rate:.2%} by more than "
                f"maxErrorRateIncrease {increase:.2%}"
            )
    if c_p95 is not None:
        if analysis.max_p95_latency_ms is not None and c_p95 > analysis.max_p95_latency_ms:
            crossed.append(f"p95 {c_p95:g} ms > maxP95LatencyMs {analysis.max_p95_latency_ms:g}")
        ratio = analysis.max_p95_latency_ratio
        if ratio is not None and s_p95 is not None and c_p95 > ratio * s_p95:
            crossed.append(
                f"p95 {c_p95:g} ms > maxP95LatencyRatio {ratio:g} x stable's {s_p95:g} ms"
            )
    figures = f"candidate {_figures(candidate)}; stable {_figures(stable)}"
    if crossed:
        return False, f"{'; '.join(crossed)} (measured: {figures})"
    return True, f"analysis passed (measured: {figures})"


def _error_rate(traffic: Traffic) -> float | None:
    return traffic.server_errors / traffic.requests if traffic.requests else None


def _figures(traffic: Traffic) -> str:
    if not traffic.requests:
        return "0 calls"
    p95 = quantile_ms(traffic.histogram, 0.95)
    return (
        f"{traffic.requests} calls, {traffic.server_errors} 5xx "
        f"({traffic.server_errors / traffic.requests:.2%}), p95 {p95:g} ms"
    )


def repeats_last(history: list[dict[str, Any]], line: dict[str, Any]) -> bool:
    """Whether `line` is the history's last line again, its time aside: a retried activity
    recording what it recorded already."""
    return bool(history) and {**history[-1], "at": line["at"]} == line


def history_line(
    event: str, message: str, step: int | None, weight: int, actor: str
) -> dict[str, Any]:
    """One line of a rollout's (or a replacement's) history."""
    return {
        "at": utcnow().isoformat(),
        "event": event,
        "message": message,
        "step": step,
        "weight": weight,
        "actor": actor,
    }


async def _note(
    session: AsyncSession,
    deployment_id: str,
    rollout_id: str,
    event: str,
    message: str,
    actor: str,
    status: RolloutStatus,
    step: int | None = None,
    weight: int = 0,
) -> None:
    """The deployment's event and the audit record of a step or decision."""
    details = {"rolloutId": rollout_id, "status": status, "step": step, "weight": weight}
    await deployments.add_event(session, deployment_id, event, message, actor, details)
    await audit.append(
        session,
        [
            AuditEntry(
                actor=actor,
                actor_kind="system" if actor in SYSTEM_ACTORS else "api_key",
                action=f"rollout.{event}",
                resource_type="deployment",
                resource_id=deployment_id,
                summary={**details, "message": message},
            )
        ],
    )
