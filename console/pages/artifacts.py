"""Artifacts and collections: drafts and registered versions, the spec as YAML, and creating,
editing, registering, cloning and running them."""

from __future__ import annotations

from typing import Any, get_args

import yaml
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from client import InvalidInputError
from console.formatting import as_yaml
from console.visit import Action, ActionDep, Visit, VisitDep, choice, render
from models.artifacts import ArtifactPublic
from models.spec import ArtifactType
from models.status import ArtifactStatus

router = APIRouter()
PAGE = 20
TYPES: tuple[ArtifactType, ...] = get_args(ArtifactType)
STATUSES: tuple[ArtifactStatus, ...] = get_args(ArtifactStatus)
STARTER_SPEC = """\
containerGroups:
  - containers:
      - imageUri: localhost/wapi-demo:latest
        port: 8080
        readinessProbe:
          path: /ready
          periodSeconds: 2
"""


@router.get("/artifacts")
async def artifacts_page(
    visit: VisitDep, search: str = "", status: str = "", type: str = "", offset: int = 0
) -> HTMLResponse:
    page = await visit.api.artifacts.list(
        search=search or None,
        status=choice(status, STATUSES),
        type=choice(type, TYPES),
        offset=max(offset, 0),
        limit=PAGE,
    )
    return render(
        visit.request,
        "artifacts.html",
        visit,
        section="artifacts",
        page=page,
        offset=max(offset, 0),
        limit=PAGE,
        filters={"search": search, "status": status, "type": type},
        statuses=STATUSES,
        types=TYPES,
    )


def _form_page(
    visit: Visit,
    *,
    values: dict[str, str],
    artifact: ArtifactPublic | None = None,
    problems: list[tuple[str, str]] | None = None,
) -> HTMLResponse:
    return render(
        visit.request,
        "artifact_form.html",
        visit,
        section="artifacts",
        artifact=artifact,
        values={"name": "", "type": "generic", "description": "", "spec": "", **values},
        types=TYPES,
        problems=problems or [],
        status=422 if problems else 200,
    )


@router.get("/artifacts/new")
async def new_artifact(visit: VisitDep) -> HTMLResponse:
    values = {"name": "", "type": "generic", "description": "", "spec": STARTER_SPEC}
    return _form_page(visit, values=values)


def _body(action: Action) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The request body a form describes, or what is wrong with its YAML."""
    try:
        spec = yaml.safe_load(action.get("spec"))
    except yaml.YAMLError as error:
        return {}, [("spec", f"not valid YAML: {error}")]
    body = {
        "name": action.get("name"),
        "type": action.get("type", "generic"),
        "description": action.get("description"),
        "spec": spec,
    }
    return body, []


def _problems(error: InvalidInputError) -> list[tuple[str, str]]:
    found = [(".".join(str(p) for p in d.loc[1:]) or "body", d.msg) for d in error.detail]
    return found or [("", error.message)]


@router.post("/artifacts")
async def create_artifact(action: ActionDep) -> Response:
    visit = action.visit
    body, problems = _body(action)
    if not problems:
        if action.get("register") == "on":
            body["status"] = "registered"
        try:
            artifact = await visit.api.artifacts.create(body)
        except InvalidInputError as error:
            problems = _problems(error)
    if problems:
        return _form_page(visit, values=action.form, problems=problems)
    what = f"version {artifact.version}" if artifact.version else "draft"
    return action.done(f"Artifact created ({what}).", to=f"/artifacts/{artifact.id}")


@router.get("/artifacts/{artifact_id}")
async def artifact_page(visit: VisitDep, artifact_id: str) -> HTMLResponse:
    artifact = await visit.api.artifacts.get(artifact_id)
    workloads = await visit.api.workloads.list(artifact_id=artifact_id, limit=PAGE)
    bundles = await visit.api.bundles.list(limit=100)
    return render(
        visit.request,
        "artifact.html",
        visit,
        section="artifacts",
        artifact=artifact,
        workloads=workloads,
        bundles=bundles.data,
    )


@router.get("/artifacts/{artifact_id}/edit")
async def edit_artifact(visit: VisitDep, artifact_id: str) -> HTMLResponse:
    artifact = await visit.api.artifacts.get(artifact_id)
    values = {
        "name": artifact.name,
        "type": artifact.type,
        "description": artifact.description,
        "spec": as_yaml(artifact.spec),
    }
    return _form_page(visit, values=values, artifact=artifact)


@router.post("/artifacts/{artifact_id}/edit")
async def replace_artifact(action: ActionDep, artifact_id: str) -> Response:
    visit = action.visit
    artifact = await visit.api.artifacts.get(artifact_id)
    body, problems = _body(action)
    if not problems:
        body["collectionId"] = artifact.collection_id
        try:
            await visit.api.artifacts.replace(artifact_id, body)
        except InvalidInputError as error:
            problems = _problems(error)
    if problems:
        return _form_page(visit, values=action.form, artifact=artifact, problems=problems)
    return action.done("Draft saved.", to=f"/artifacts/{artifact_id}")


@router.post("/artifacts/{artifact_id}/register")
async def register(action: ActionDep, artifact_id: str) -> Response:
    artifact = await action.visit.api.artifacts.register(artifact_id)
    return action.done(f"Registered as version {artifact.version}.")


@router.post("/artifacts/{artifact_id}/clone")
async def clone(action: ActionDep, artifact_id: str) -> Response:
    name = action.get("name")
    copy = await action.visit.api.artifacts.clone(artifact_id, {"name": name} if name else {})
    return action.done("Cloned into a new draft.", to=f"/artifacts/{copy.id}")


@router.post("/artifacts/{artifact_id}/delete")
async def delete(action: ActionDep, artifact_id: str) -> Response:
    await action.visit.api.artifacts.delete(artifact_id)
    return action.done("Draft deleted.", to="/artifacts")


@router.post("/artifacts/{artifact_id}/run")
async def run(action: ActionDep, artifact_id: str) -> Response:
    """A workload of this artifact."""
    group: dict[str, Any] = {"replicaCount": action.number("replicas", "1")}
    if bundle := action.get("bundle"):
        group["resourceBundles"] = [bundle]
    workload = await action.visit.api.workloads.create(
        {
            "name": action.get("name"),
            "artifactId": artifact_id,
            "runtime": {"containerGroups": [group]},
        }
    )
    return action.done(f"Workload '{workload.name}' submitted.", to=f"/workloads/{workload.id}")


@router.get("/collections")
async def collections_page(visit: VisitDep, search: str = "", offset: int = 0) -> HTMLResponse:
    page = await visit.api.collections.list(
        search=search or None, offset=max(offset, 0), limit=PAGE
    )
    return render(
        visit.request,
        "collections.html",
        visit,
        section="collections",
        page=page,
        offset=max(offset, 0),
        limit=PAGE,
        filters={"search": search},
    )


@router.get("/collections/{collection_id}")
async def collection_page(visit: VisitDep, collection_id: str, offset: int = 0) -> HTMLResponse:
    collection = await visit.api.collections.get(collection_id)
    versions = await visit.api.collections.versions(
        collection_id, offset=max(offset, 0), limit=PAGE
    )
    return render(
        visit.request,
        "collection.html",
        visit,
        section="collections",
        collection=collection,
        page=versions,
        offset=max(offset, 0),
        limit=PAGE,
        filters={},
    )
