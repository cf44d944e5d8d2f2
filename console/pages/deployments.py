"""Deployments: the list, and a page per deployment made of panels (status and health,
traffic charts, swaps, invoke, tokens, shared roles, events).

A panel is a template and the API reads it needs; panels with `every` refresh themselves
through `GET .../panels/{name}`. A new aspect of a deployment (rollouts, say) is one more
`Panel` in `PANELS`, a template in `templates/panels/` and, for its buttons, a few routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from console import charts
from console.capabilities import Capabilities
from console.visit import ActionDep, Visit, VisitDep, choice, render
from models.deployments import DeploymentPublic
from models.stats import DeploymentStats
from models.status import DeploymentStatus, HealthStatus

router = APIRouter()
PAGE = 20
STATUSES: tuple[DeploymentStatus, ...] = get_args(DeploymentStatus)
VERDICTS: tuple[HealthStatus, ...] = get_args(HealthStatus)
Loader = Callable[[Visit, DeploymentPublic], Awaitable[dict[str, Any]]]
INVOKE_BODY_SHOWN = 20_000


@dataclass(frozen=True)
class Panel:
    name: str
    title: str
    load: Loader
    every: int | None = None  # seconds between refreshes; None: drawn once
    shown: Callable[[Capabilities, DeploymentPublic], bool] = lambda can, deployment: True

    @property
    def template(self) -> str:
        return f"panels/{self.name}.html"


async def _status(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    return {
        "health": await visit.api.deployments.health(deployment.id, recent=10),
        "workload": await visit.api.workloads.get(deployment.workload_id),
    }


async def _traffic(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    stats = await visit.api.deployments.stats(deployment.id)
    return {"stats": stats, "charts": traffic_charts(stats)}


def traffic_charts(stats: DeploymentStats) -> dict[str, Any]:
    starts = [b.start for b in stats.buckets]
    ok = [b.total_requests - b.server_errors - b.user_errors for b in stats.buckets]
    availability = [
        b.health_checks_ok / b.health_checks * 100 if b.health_checks else None
        for b in stats.buckets
    ]
    return {
        "requests": charts.bars(
            "Requests per minute",
            starts,
            [
                charts.Series("answered", ok, "bar-ok"),
                charts.Series("4xx", [b.user_errors for b in stats.buckets], "bar-warn"),
                charts.Series("5xx", [b.server_errors for b in stats.buckets], "bar-bad"),
            ],
        ),
        "latency": charts.lines(
            "Response time (ms)",
            starts,
            [
                charts.Series("mean", [b.response_time_avg for b in stats.buckets], "line-avg"),
                charts.Series("slowest", [b.response_time_max for b in stats.buckets], "line-max"),
            ],
            " ms",
        ),
        "availability": charts.bars(
            "Health checks passed (%)",
            starts,
            [charts.Series("available", availability, "bar-ok")],
            "%",
        ),
    }


async def _swaps(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    swaps = await visit.api.deployments.swaps(deployment.id, limit=5)
    running = [s for s in swaps.data if s.status in ("starting", "switched")]
    return {"swaps": swaps.data, "current": running[0] if running else None}


async def _swap_form(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    page = await visit.api.workloads.list(limit=100)
    candidates = [
        w for w in page.data if w.artifact.status == "registered" and w.id != deployment.workload_id
    ]
    return {"candidates": candidates}


async def _tokens(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    return {"tokens": await visit.api.deployments.tokens(deployment.id), "new_token": None}


async def _roles(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    return {
        "kind": "deployments",
        "resource_id": deployment.id,
        "roles": (await visit.api.deployments.roles(deployment.id, limit=100)).data,
        "can_share": visit.can.manages_deployment(deployment),
    }


async def _events(visit: Visit, deployment: DeploymentPublic) -> dict[str, Any]:
    events = await visit.api.deployments.events(deployment.id, limit=20, order_by="-timestamp")
    return {"events": events.data}


async def _nothing(_: Visit, __: DeploymentPublic) -> dict[str, Any]:
    return {}


def _manager(can: Capabilities, deployment: DeploymentPublic) -> bool:
    return can.manages_deployment(deployment)


def _invoker(can: Capabilities, deployment: DeploymentPublic) -> bool:
    return can.invokes_deployment(deployment)


PANELS = [
    Panel("status", "Status and health", _status, every=3),
    Panel("traffic", "Traffic, last hour", _traffic, every=5),
    Panel("swaps", "Swaps", _swaps, every=2),
    Panel("swap_form", "Swap to another workload", _swap_form, shown=_manager),
    Panel("invoke", "Invoke", _nothing, shown=_invoker),
    Panel("tokens", "Invoke tokens", _tokens, shown=_manager),
    Panel("roles", "Shared roles", _roles),
    Panel("events", "Events", _events, every=5),
    Panel("danger", "Delete", _nothing, shown=_manager),
]
BY_NAME = {panel.name: panel for panel in PANELS}


@router.get("/deployments")
async def deployments_page(
    visit: VisitDep, search: str = "", status: str = "", health: str = "", offset: int = 0
) -> HTMLResponse:
    page = await visit.api.deployments.list(
        search=search or None,
        status=choice(status, STATUSES),
        health_status=choice(health, VERDICTS),
        offset=max(offset, 0),
        limit=PAGE,
    )
    return render(
        visit.request,
        "deployments.html",
        visit,
        section="deployments",
        page=page,
        offset=max(offset, 0),
        limit=PAGE,
        filters={"search": search, "status": status, "health": health},
        statuses=STATUSES,
        verdicts=VERDICTS,
    )


@router.get("/deployments/{deployment_id}")
async def deployment_page(visit: VisitDep, deployment_id: str) -> HTMLResponse:
    deployment = await visit.api.deployments.get(deployment_id)
    panels = [p for p in PANELS if p.shown(visit.can, deployment)]
    loaded = [await panel.load(visit, deployment) for panel in panels]
    return render(
        visit.request,
        "deployment.html",
        visit,
        section="deployments",
        deployment=deployment,
        panels=list(zip(panels, loaded, strict=True)),
    )


@router.get("/deployments/{deployment_id}/panels/{name}")
async def panel(visit: VisitDep, deployment_id: str, name: str) -> HTMLResponse:
    return await _render_panel(visit, deployment_id, name)


async def _render_panel(visit: Visit, deployment_id: str, name: str, **extra: Any) -> HTMLResponse:
    deployment = await visit.api.deployments.get(deployment_id)
    chosen = BY_NAME.get(name)
    if chosen is None or not chosen.shown(visit.can, deployment):
        return render(visit.request, "_error.html", visit, message=f"no panel '{name}' here")
    data = {**await chosen.load(visit, deployment), **extra}
    return render(
        visit.request, "_panel.html", visit, deployment=deployment, panel=chosen, data=data
    )


@router.post("/deployments/{deployment_id}/swap")
async def swap(action: ActionDep, deployment_id: str) -> Response:
    await action.visit.api.deployments.swap(
        deployment_id,
        {
            "workloadId": action.get("workloadId"),
            "readyTimeoutSeconds": action.number("readyTimeoutSeconds", "300"),
        },
    )
    return action.done("Swap started.")


@router.post("/deployments/{deployment_id}/swap/cancel")
async def cancel_swap(action: ActionDep, deployment_id: str) -> Response:
    await action.visit.api.deployments.cancel_swap(deployment_id)
    return action.done("Swap cancelled.")


@router.post("/deployments/{deployment_id}/invoke")
async def invoke(action: ActionDep, deployment_id: str) -> HTMLResponse:
    """Call the deployment through the gateway with the user's key; the answer is shown."""
    body = action.form.get("body", "")
    headers = {"Content-Type": action.get("contentType") or "application/json"} if body else {}
    answer = await action.visit.api.deployments.invoke(
        deployment_id,
        action.get("path").lstrip("/"),
        method=action.get("method", "GET"),
        content=body or None,
        headers=headers,
    )
    text = answer.text
    return render(
        action.visit.request,
        "panels/invoke_answer.html",
        action.visit,
        answer=answer,
        body=text[:INVOKE_BODY_SHOWN],
        cut=len(text) > INVOKE_BODY_SHOWN,
    )


@router.post("/deployments/{deployment_id}/tokens")
async def create_token(action: ActionDep, deployment_id: str) -> HTMLResponse:
    """The new token is shown once, in the refreshed tokens panel."""
    created = await action.visit.api.deployments.create_token(
        deployment_id, {"name": action.get("name")}
    )
    return await _render_panel(action.visit, deployment_id, "tokens", new_token=created)


@router.post("/deployments/{deployment_id}/tokens/{token_id}/revoke")
async def revoke_token(action: ActionDep, deployment_id: str, token_id: str) -> Response:
    await action.visit.api.deployments.revoke_token(deployment_id, token_id)
    return action.done("Token revoked.")


@router.post("/deployments/{deployment_id}/delete")
async def delete(action: ActionDep, deployment_id: str) -> Response:
    await action.visit.api.deployments.delete(deployment_id)
    return action.done("Deployment deleted; its workload keeps running.", to="/deployments")
