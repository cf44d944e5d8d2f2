"""`.../{id}/sharedRoles/` on artifacts, collections, workloads, secrets and deployments.

One pair of routes per kind of resource, built by `shared_roles_router`. Everyone with a role
that reads the resource sees who holds which role; owners (with an editor or admin key) grant,
change and remove roles, and a resource keeps at least one owner.

No `from __future__ import annotations` here: the path parameter's alias differs per kind, so
the routes' annotations are built at run time and must be evaluated where they are defined.
"""

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from api.deps import Editor, PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.presenters.sharing import present_role
from models.common import Page
from models.sharing import ResourceType, RolesUpdate, SharedRole
from services import access, sharing

ROLES_DOC = (
    "`owner` (read, use, change, share, delete), `user` (read and use), `consumer` (use only: "
    "invoke, reference, run). Your key's global role is a ceiling: viewer keys never change "
    "anything."
)


def shared_roles_router(kind: ResourceType, prefix: str, param: str, tag: str) -> APIRouter:
    """GET and PATCH `{prefix}/{param}/sharedRoles/` for one kind of resource."""
    noun = access.NAMES[kind]
    resource_id_param = Annotated[
        str,
        Path(
            alias=param,
            description=f"The {noun}'s id.",
            pattern=r"^[A-Za-z0-9_-]+$",
            max_length=64,
            examples=["65f1c0ffee65f1c0ffee65f1"],
        ),
    ]
    router = APIRouter(prefix=prefix, tags=[tag])

    async def list_roles(
        request: Request,
        session: SessionDep,
        principal: Viewer,
        page: PageDep,
        resource_id: resource_id_param,
    ) -> Page[SharedRole]:
        await access.require(session, kind, resource_id, principal, "read")
        rows, total = await sharing.list_roles(session, kind, resource_id, page)
        return page_of(request, rows, total, page, present_role)

    async def change_roles(
        session: SessionDep,
        principal: Editor,
        resource_id: resource_id_param,
        data: RolesUpdate,
    ) -> Response:
        await access.require(session, kind, resource_id, principal, "manage")
        await sharing.change_roles(session, kind, resource_id, data.roles, principal.username)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    path = f"/{{{param}}}/sharedRoles/"
    router.add_api_route(
        path,
        list_roles,
        methods=["GET"],
        summary=f"List who may use a {noun}",
        description=f"Users and their roles on the {noun}, by username: {ROLES_DOC}",
        operation_id=f"list_{kind}_shared_roles",
    )
    router.add_api_route(
        path,
        change_roles,
        methods=["PATCH"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Share a {noun}",
        description=(
            f"Grant, change or (with `role: null`) remove the listed users' roles on the {noun}; "
            "users not listed keep theirs. Owners only. A resource keeps at least one owner "
            "(409 otherwise); changes reach every gateway within a second."
        ),
        operation_id=f"share_{kind}",
    )
    return router


routers = [
    shared_roles_router("artifact", "/registry/artifacts", "artifactId", "artifacts"),
    shared_roles_router(
        "collection", "/registry/artifactCollections", "collectionId", "artifact collections"
    ),
    shared_roles_router("workload", "/console/workloads", "workloadId", "workloads"),
    shared_roles_router("deployment", "/console/deployments", "deploymentId", "deployment access"),
    shared_roles_router("secret", "/secrets", "secretId", "secrets"),
]
