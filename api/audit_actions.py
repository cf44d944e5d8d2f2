"""Readable names for management routes: `POST .../artifacts/{artifactId}/clone/` is
`artifact.clone` on resource type `artifact`, identified by the `artifactId` path parameter."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from starlette.types import Scope

API_PREFIX = "/api/v2/"
METHOD_VERBS = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}
# Routes the rule in `route_action` would name less clearly.
ACTION_OVERRIDES: dict[tuple[str, str], str] = {
    ("DELETE", "/api/v2/apiKeys/{keyId}/"): "apiKey.revoke",
    ("DELETE", "/api/v2/console/deployments/{deploymentId}/swap/"): "deployment.cancelSwap",
    ("DELETE", "/api/v2/console/deployments/{deploymentId}/tokens/{tokenId}/"): "token.revoke",
}
# Trailing segments that name an action on the resource, though they look like collections.
ACTION_SEGMENTS = {"sharedRoles": "share"}


@dataclass(frozen=True)
class RouteAction:
    action: str
    resource_type: str
    verb: str
    id_param: str | None


def _singular(segment: str) -> str:
    return segment[:-1] if segment.endswith("s") and not segment.endswith("ss") else segment


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


@functools.lru_cache(maxsize=1024)
def route_action(method: str, template: str) -> RouteAction:
    """`<resource>.<verb>`. The resource is the collection the last path parameter indexes (or
    the last segment of a top-level collection). The verb is a trailing action segment
    (`.../{id}/clone/` -> `clone`), else the method's: POST create, PUT replace, PATCH update,
    DELETE delete. A trailing plural segment is a sub-collection (`.../{id}/tokens/` ->
    `token.create`)."""
    segments = [s for s in template.removeprefix(API_PREFIX).split("/") if s] or ["api"]
    params = [i for i, s in enumerate(segments) if _is_param(s)]
    verb = METHOD_VERBS.get(method, method.lower())
    if not params:
        resource, id_param = segments[-1], None
    else:
        last = params[-1]
        id_param = segments[last].strip("{}")
        tail = segments[last + 1 :]
        resource = segments[last - 1] if last else "api"
        if len(tail) == 1 and tail[0] in ACTION_SEGMENTS:
            verb = ACTION_SEGMENTS[tail[0]]
        elif len(tail) == 1 and not tail[0].endswith("s"):
            verb = tail[0]
        elif tail:
            resource = tail[-1]
    resource_type = _singular(resource.strip("{}"))
    action = ACTION_OVERRIDES.get((method, template)) or f"{resource_type}.{verb}"
    return RouteAction(action, resource_type, verb, id_param)


def matched_action(scope: Scope) -> RouteAction | None:
    """The action of the route that handled this request; None if no route took this method."""
    route = scope.get("route")
    template: str | None = getattr(route, "path", None)
    methods: set[str] = getattr(route, "methods", None) or set()
    if template is None or scope["method"] not in methods:
        return None
    if not template.startswith(API_PREFIX):
        # Newer FastAPI keeps a route's path relative to the router that declared it; every
        # management router is included under the API prefix.
        template = API_PREFIX.rstrip("/") + template
    return route_action(scope["method"], template)
