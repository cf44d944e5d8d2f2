"""The authorization matrix: every route, called as every key role (viewer, editor, admin)
holding every role (none, consumer, user, owner) on the resource the route touches, and with
no key at all, on SQLite and PostgreSQL. Each cell asserts one exact status; an allowed call
gets its 2xx on a stack where it can succeed (real Temporal and worker; see governed_stack).

Each cell builds the resources it acts on afresh, shares them with the caller at the cell's
role, and then calls the route once. docs/access.md states the same matrix for readers.

Why one module of this length: the table of cases is the specification; split, the reader
could not see at once that every route is in it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from models.api_keys import Role
from models.sharing import ResourceType, ShareRole
from models.status import WorkloadStatus
from tests.factories import spec
from tests.support.governed_stack import GovernedStack, governed_stack

KEY_ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
SHARE_ROLES: tuple[ShareRole | None, ...] = (None, "consumer", "user", "owner")
RANK: dict[Role, int] = {"viewer": 0, "editor": 1, "admin": 2}
INVOKE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# What each role on a resource allows, written out here rather than imported, so the test
# checks the implementation against the documented rules and not against itself.
Need = Literal["use", "read", "manage"]
ALLOWED: dict[Need, set[ShareRole]] = {
    "use": {"owner", "user", "consumer"},
    "read": {"owner", "user"},
    "manage": {"owner"},
}


@dataclass(frozen=True)
class Caller:
    key_role: Role
    role: ShareRole | None

    @property
    def username(self) -> str:
        return f"{self.key_role}-{self.role or 'none'}"


CALLERS = [Caller(key, role) for key in KEY_ROLES for role in SHARE_ROLES]


@dataclass
class Target:
    """What one cell calls: values for the path's placeholders, a body, and for lists the id
    that must (or must not) be in the answer."""

    path: dict[str, str] = field(default_factory=dict)
    body: Any = None
    listed: str | None = None


# Builds the target of one cell; `allowed` says whether the call will be let through.
Make = Callable[[GovernedStack, Caller, bool], Awaitable[Target]]


def same(role: ShareRole | None) -> ShareRole | None:
    return role


def via_deployment(role: ShareRole | None) -> ShareRole | None:
    """Owner or user of a deployment is user of the workload behind it; consumers get nothing."""
    return "user" if role in ("owner", "user") else None


@dataclass(frozen=True)
class Case:
    method: str
    template: str
    make: Make
    ok: int
    key: Role = "viewer"
    need: Need | None = None  # None: the route needs no role on a resource
    inherit: Callable[[ShareRole | None], ShareRole | None] = same
    reference: bool = False  # the resource is named in the body: one you cannot see is a 422
    gateway: bool = False  # the gateway never says whether a resource exists: 403
    listing: bool = False  # 200 for all; the target is listed only to those who may read it
    variant: str = ""

    def expected(self, caller: Caller) -> int:
        if RANK[caller.key_role] < RANK[self.key]:
            return 403
        if self.need is None or caller.key_role == "admin":
            return self.ok
        role = self.inherit(caller.role)
        if role is None:
            return 403 if self.gateway else 422 if self.reference else 404
        return self.ok if role in ALLOWED[self.need] else 403

    def visible(self, caller: Caller) -> bool:
        return caller.key_role == "admin" or self.inherit(caller.role) in ALLOWED["read"]


# Targets, one builder per situation. `kind` is what the caller's role is granted on.


def shared(kind: ResourceType, build: Callable[[GovernedStack], Awaitable[Any]]) -> Make:
    """A fresh resource from `build`, shared with the caller; its id fills `{id}`."""

    async def make(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
        row = await build(stack)
        await stack.grant(kind, row.id, caller.username, caller.role)
        return Target(path={"id": row.id}, listed=row.id)

    return make


def draft(stack: GovernedStack) -> Awaitable[Any]:
    return stack.artifact()


def registered(stack: GovernedStack) -> Awaitable[Any]:
    return stack.artifact(registered=True)


@dataclass(frozen=True)
class Ref:
    id: str


async def collection(stack: GovernedStack) -> Ref:
    artifact = await stack.artifact(registered=True)
    assert artifact.collection_id is not None
    return Ref(artifact.collection_id)


async def in_shared_collection(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    """A registered artifact; the caller's role is on its collection."""
    artifact = await stack.artifact(registered=True)
    assert artifact.collection_id is not None
    await stack.grant("collection", artifact.collection_id, caller.username, caller.role)
    return Target(path={"id": artifact.id}, listed=artifact.id)


def stopped(stack: GovernedStack) -> Awaitable[Any]:
    return stack.workload(status="stopped", ready=True)


def running(stack: GovernedStack) -> Awaitable[Any]:
    return stack.workload(status="running", ready=True)


def submitted(stack: GovernedStack) -> Awaitable[Any]:
    return stack.workload(status="submitted")


def deployment(stack: GovernedStack) -> Awaitable[Any]:
    return stack.deployment()


def secret(stack: GovernedStack) -> Awaitable[Any]:
    return stack.secret()


async def nothing(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    return Target()


async def bundle(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    return Target(path={"id": "cpu.small"})


async def new_secret(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    return Target(body={"name": stack.name("secret"), "value": "v"})


async def new_key(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    return Target(body={"name": "k", "username": stack.name("user"), "role": "viewer"})


async def artifact_into_collection(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    artifact = await stack.artifact(registered=True)
    assert artifact.collection_id is not None
    await stack.grant("collection", artifact.collection_id, caller.username, caller.role)
    body = {
        "name": stack.name(),
        "status": "registered",
        "collectionId": artifact.collection_id,
        "spec": stack.spec(),
    }
    return Target(body=body)


def secret_env(secret_id: str) -> list[dict[str, str]]:
    return [{"name": "TOKEN", "source": "secret", "secretId": secret_id}]


async def artifact_with_secret(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    row = await stack.secret()
    await stack.grant("secret", row.id, caller.username, caller.role)
    body = {"name": stack.name(), "spec": stack.spec(environmentVars=secret_env(row.id))}
    return Target(body=body)


def workload_of(build: Callable[[GovernedStack], Awaitable[Any]]) -> Make:
    async def make(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
        artifact = await build(stack)
        await stack.grant("artifact", artifact.id, caller.username, caller.role)
        return Target(body={"name": stack.name(), "artifactId": artifact.id})

    return make


async def workload_with_secret(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    row = await stack.secret()
    await stack.grant("secret", row.id, caller.username, caller.role)
    override = {"name": "main", "environmentVars": secret_env(row.id)}
    body = {
        "name": stack.name(),
        "artifact": {"spec": stack.spec()},
        "runtime": {"containerGroups": [{"containers": [override]}]},
    }
    return Target(body=body)


def behind_deployment(status: WorkloadStatus) -> Make:
    """A workload in `status` behind a deployment; the caller's role is on the deployment."""

    async def make(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
        workload = await stack.workload(status=status, ready=True)
        row = await stack.deployment(workload.id)
        await stack.grant("deployment", row.id, caller.username, caller.role)
        return Target(path={"id": workload.id}, listed=workload.id)

    return make


workload_behind_deployment = behind_deployment("stopped")


async def deployable(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    workload = await stack.workload()
    await stack.grant("workload", workload.id, caller.username, caller.role)
    return Target(body={"name": stack.name(), "workloadId": workload.id})


async def swappable(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    """A deployment shared at the cell's role, and a candidate workload the caller owns."""
    target = await shared("deployment", deployment)(stack, caller, allowed)
    candidate = await stack.workload()
    await stack.grant("workload", candidate.id, caller.username, "owner")
    target.body = {"workloadId": candidate.id, "readyTimeoutSeconds": 3600}
    return target


async def swapping(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    """A deployment with a swap in progress (its candidate never gets ready), for a caller who
    may cancel it; any deployment for one who may not (refused before anything is read)."""
    target = await shared("deployment", deployment)(stack, caller, allowed)
    if not allowed:
        return target
    candidate = await stack.workload(never_ready=True)
    answer = await stack.admin.post(
        f"/api/v2/console/deployments/{target.path['id']}/swap/",
        json={"workloadId": candidate.id, "readyTimeoutSeconds": 3600},
    )
    assert answer.status_code == 202, answer.text
    return target


async def rollable(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    """As `swappable`, with steps: a rollout's access is a swap's."""
    target = await swappable(stack, caller, allowed)
    target.body = {**target.body, "steps": [{"setWeight": 10}, {"pause": {}}]}
    return target


def rolling_out(*, paused: bool = False, always: bool = False) -> Make:
    """A deployment with a rollout in progress (its candidate never gets ready); `paused` by
    its owner first. Made only for a caller let through, unless `always`: the others are
    refused before the rollout is read."""

    async def make(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
        target = await shared("deployment", deployment)(stack, caller, allowed)
        target.path["rolloutId"] = "0" * 24
        if not (allowed or always):
            return target
        candidate = await stack.workload(never_ready=True)
        rollouts = f"/api/v2/console/deployments/{target.path['id']}/rollouts/"
        body = {"workloadId": candidate.id, "readyTimeoutSeconds": 3600, "steps": []}
        answer = await stack.admin.post(rollouts, json=body)
        assert answer.status_code == 202, answer.text
        target.path["rolloutId"] = answer.json()["id"]
        if paused:
            answer = await stack.admin.post(f"{rollouts}{target.path['rolloutId']}/pause/")
            assert answer.status_code == 200, answer.text
        return target

    return make


async def replaceable(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    """A running workload shared at the cell's role, and a registered artifact the caller
    owns (whose container never gets ready) to replace its artifact with."""
    target = await shared("workload", running)(stack, caller, allowed)
    artifact = await stack.artifact(
        registered=True, readinessProbe={"path": "/ready"}, command=["never-ready"]
    )
    await stack.grant("artifact", artifact.id, caller.username, "owner")
    target.body = {"artifactId": artifact.id, "strategy": "rolling"}
    return target


def replacing(*, always: bool = False) -> Make:
    """A running workload with a replacement in progress (its new version never gets ready),
    made only for a caller let through unless `always`."""

    async def make(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
        target = await shared("workload", running)(stack, caller, allowed)
        if not (allowed or always):
            return target
        artifact = await stack.artifact(
            registered=True, readinessProbe={"path": "/ready"}, command=["never-ready"]
        )
        answer = await stack.admin.post(
            f"/api/v2/console/workloads/{target.path['id']}/replacement/",
            json={"artifactId": artifact.id, "strategy": "rolling"},
        )
        assert answer.status_code == 202, answer.text
        return target

    return make


async def with_token(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    target = await shared("deployment", deployment)(stack, caller, allowed)
    made = await stack.admin.post(
        f"/api/v2/console/deployments/{target.path['id']}/tokens/", json={"name": "t"}
    )
    target.path["tokenId"] = made.json()["id"]
    return target


async def api_key(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
    made = await stack.admin.post(
        "/api/v2/apiKeys/", json={"name": "k", "username": stack.name("user"), "role": "viewer"}
    )
    return Target(path={"id": made.json()["id"]})


A = "/api/v2/registry/artifacts/"
C = "/api/v2/registry/artifactCollections/"
W = "/api/v2/console/workloads/"
D = "/api/v2/console/deployments/"
S = "/api/v2/secrets/"
SHARE = {"roles": [{"username": "zed", "role": "consumer"}]}
DRAFT_BODY = {"name": "replaced", "spec": spec("localhost/replaced:1")}


def sharing(prefix: str, kind: ResourceType, build: Callable[[GovernedStack], Any]) -> list[Case]:
    make = shared(kind, build)
    return [
        Case("GET", prefix + "{id}/sharedRoles/", make, 200, need="read"),
        Case(
            "PATCH", prefix + "{id}/sharedRoles/", with_body(make, SHARE), 204, "editor", "manage"
        ),
    ]


def with_body(make: Make, body: Any) -> Make:
    async def made(stack: GovernedStack, caller: Caller, allowed: bool) -> Target:
        target = await make(stack, caller, allowed)
        target.body = body
        return target

    return made


CASES: list[Case] = [
    # Artifacts
    Case("POST", A, artifact_into_collection, 201, "editor", "manage", reference=True,
         variant="registering into a collection"),
    Case("POST", A, artifact_with_secret, 201, "editor", "use", reference=True,
         variant="referencing a secret"),
    Case("GET", A, shared("artifact", draft), 200, listing=True),
    Case("GET", A, in_shared_collection, 200, listing=True,
         variant="registered, shared through its collection"),
    Case("GET", A + "{id}/", shared("artifact", draft), 200, need="read"),
    Case("GET", A + "{id}/", in_shared_collection, 200, need="read",
         variant="registered, shared through its collection"),
    Case("PATCH", A + "{id}/", with_body(shared("artifact", draft), {"description": "x"}), 200,
         "editor", "manage"),
    Case("PUT", A + "{id}/", with_body(shared("artifact", draft), DRAFT_BODY), 200, "editor",
         "manage"),
    Case("DELETE", A + "{id}/", shared("artifact", draft), 204, "editor", "manage"),
    Case("POST", A + "{id}/clone/", shared("artifact", draft), 201, "editor", "read"),
    *sharing(A, "artifact", draft),
    # Artifact collections
    Case("GET", C, shared("collection", collection), 200, listing=True),
    Case("GET", C + "{id}/", shared("collection", collection), 200, need="read"),
    Case("GET", C + "{id}/versions/", shared("collection", collection), 200, need="read"),
    *sharing(C, "collection", collection),
    # Workloads
    Case("POST", W, workload_of(registered), 201, "editor", "use", reference=True,
         variant="from a registered artifact"),
    Case("POST", W, workload_of(draft), 201, "editor", "read", reference=True,
         variant="from a draft artifact"),
    Case("POST", W, workload_with_secret, 201, "editor", "use", reference=True,
         variant="referencing a secret in its runtime"),
    Case("GET", W, shared("workload", stopped), 200, listing=True),
    Case("GET", W, workload_behind_deployment, 200, listing=True, inherit=via_deployment,
         variant="behind a deployment shared with the caller"),
    Case("GET", W + "{id}/", shared("workload", stopped), 200, need="read"),
    Case("GET", W + "{id}/", workload_behind_deployment, 200, need="read",
         inherit=via_deployment, variant="behind a deployment shared with the caller"),
    Case("PATCH", W + "{id}/", with_body(shared("workload", stopped), {"description": "x"}),
         200, "editor", "manage"),
    Case("PATCH", W + "{id}/", with_body(workload_behind_deployment, {"description": "x"}),
         200, "editor", "manage", inherit=via_deployment,
         variant="behind a deployment shared with the caller"),
    Case("DELETE", W + "{id}/", shared("workload", stopped), 204, "editor", "manage"),
    Case("POST", W + "{id}/start/", shared("workload", stopped), 202, "editor", "manage"),
    Case("POST", W + "{id}/stop/", shared("workload", submitted), 202, "editor", "manage"),
    Case("POST", W + "{id}/stop/", behind_deployment("submitted"), 202, "editor", "manage",
         inherit=via_deployment, variant="behind a deployment shared with the caller"),
    Case("GET", W + "{id}/events/", shared("workload", stopped), 200, need="read"),
    Case("GET", W + "{id}/replicas/", shared("workload", stopped), 200, need="read"),
    Case("GET", W + "{id}/scaling/", shared("workload", stopped), 200, need="read"),
    Case("GET", W + "{id}/logs/", shared("workload", stopped), 200, need="read"),
    Case("GET", W + "{id}/logs/", workload_behind_deployment, 200, need="read",
         inherit=via_deployment, variant="behind a deployment shared with the caller"),
    Case("POST", W + "{id}/replacement/", replaceable, 202, "editor", "manage"),
    Case("GET", W + "{id}/replacement/", replacing(always=True), 200, need="read"),
    Case("DELETE", W + "{id}/replacement/", replacing(), 202, "editor", "manage"),
    *sharing(W, "workload", stopped),
    # Deployments
    Case("POST", D, deployable, 201, "editor", "manage", reference=True),
    Case("GET", D, shared("deployment", deployment), 200, listing=True),
    Case("GET", D + "{id}/", shared("deployment", deployment), 200, need="read"),
    Case("PATCH", D + "{id}/", with_body(shared("deployment", deployment), {"description": "x"}),
         200, "editor", "manage"),
    Case("DELETE", D + "{id}/", shared("deployment", deployment), 204, "editor", "manage"),
    Case("POST", D + "{id}/swap/", swappable, 202, "editor", "manage"),
    Case("DELETE", D + "{id}/swap/", swapping, 202, "editor", "manage"),
    Case("GET", D + "{id}/swaps/", shared("deployment", deployment), 200, need="read"),
    Case("POST", D + "{id}/rollouts/", rollable, 202, "editor", "manage"),
    Case("GET", D + "{id}/rollouts/", shared("deployment", deployment), 200, need="read"),
    Case("GET", D + "{id}/rollouts/{rolloutId}/", rolling_out(always=True), 200, need="read"),
    Case("POST", D + "{id}/rollouts/{rolloutId}/promote/", rolling_out(), 200, "editor",
         "manage"),
    Case("POST", D + "{id}/rollouts/{rolloutId}/pause/", rolling_out(), 200, "editor", "manage"),
    Case("POST", D + "{id}/rollouts/{rolloutId}/resume/", rolling_out(paused=True), 200,
         "editor", "manage"),
    Case("POST", D + "{id}/rollouts/{rolloutId}/abort/", rolling_out(), 200, "editor", "manage"),
    Case("GET", D + "{id}/health/", shared("deployment", deployment), 200, need="read"),
    Case("GET", D + "{id}/stats/", shared("deployment", deployment), 200, need="read"),
    Case("GET", D + "{id}/events/", shared("deployment", deployment), 200, need="read"),
    Case("POST", D + "{id}/tokens/", with_body(shared("deployment", deployment), {"name": "t"}),
         201, "editor", "manage"),
    Case("GET", D + "{id}/tokens/", shared("deployment", deployment), 200, "editor", "manage"),
    Case("DELETE", D + "{id}/tokens/{tokenId}/", with_token, 200, "editor", "manage"),
    *sharing(D, "deployment", deployment),
    # Secrets
    Case("POST", S, new_secret, 201, "editor"),
    Case("GET", S, shared("secret", secret), 200, listing=True),
    Case("GET", S + "{id}/", shared("secret", secret), 200, need="read"),
    Case("POST", S + "{id}/rotate/", with_body(shared("secret", secret), {"value": "n3w"}), 200,
         "editor", "manage"),
    Case("DELETE", S + "{id}/", shared("secret", secret), 204, "editor", "manage"),
    *sharing(S, "secret", secret),
    # Routes with no resource roles: the key's role alone decides
    Case("GET", "/api/v2/resourceBundles/", nothing, 200),
    Case("GET", "/api/v2/resourceBundles/{id}/", bundle, 200),
    Case("GET", "/api/v2/mlops/compute/bundles/", nothing, 200),
    Case("GET", "/api/v2/apiKeys/me/", nothing, 200),
    Case("POST", "/api/v2/apiKeys/", new_key, 201, "admin"),
    Case("GET", "/api/v2/apiKeys/", nothing, 200, "admin"),
    Case("GET", "/api/v2/apiKeys/{id}/", api_key, 200, "admin"),
    Case("DELETE", "/api/v2/apiKeys/{id}/", api_key, 200, "admin"),
    Case("GET", "/api/v2/auditEvents/", nothing, 200, "admin"),
    Case("GET", "/api/v2/auditEvents/verify/", nothing, 200, "admin"),
]  # fmt: skip
for _method in INVOKE_METHODS:
    CASES += [
        Case(_method, "/api/v2/endpoints/workloads/{id}/echo", shared("workload", stopped), 200,
             need="use", gateway=True),
        Case(_method, "/api/v2/endpoints/workloads/{id}/echo", workload_behind_deployment, 200,
             need="use", gateway=True, inherit=via_deployment,
             variant="behind a deployment shared with the caller"),
        Case(_method, "/api/v2/endpoints/deployments/{id}/echo", shared("deployment", deployment),
             200, need="use", gateway=True),
    ]  # fmt: skip


def fill(template: str, target: Target) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: target.path[m.group(1)], template)


def routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), re.sub(r"\{(path)\}", "echo", path))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v2/")
        for method in operations
    }


def normalized(template: str) -> str:
    return re.sub(r"\{(?!path)\w+\}", "{}", template)


@pytest.fixture
async def stack(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    docker_url: str,
    test_image: str,
) -> AsyncIterator[GovernedStack]:
    async with governed_stack(
        settings, temporal_env.client, task_queue, docker_url, test_image
    ) as stack:
        for caller in CALLERS:
            await stack.key(caller.username, caller.key_role)
        yield stack


async def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    documented = {(method, normalized(path)) for method, path in routes(app)}
    covered = {(case.method, normalized(case.template)) for case in CASES}
    assert documented == covered


@pytest.mark.timeout(900)  # over a thousand calls on a live stack: two minutes on a busy machine
async def test_every_caller_on_every_route(stack: GovernedStack) -> None:
    failures: list[str] = []
    for case in CASES:
        for caller in [*CALLERS, None]:
            who = caller or Caller("viewer", None)
            target = await case.make(
                stack, who, case.expected(who) == case.ok and caller is not None
            )
            async with stack.client(caller.username if caller else None) as client:
                url = fill(case.template, target)
                search = {"search": target.listed} if case.listing else None
                answer = await client.request(case.method, url, json=target.body, params=search)
            expected: int | str = 401 if caller is None else case.expected(caller)
            got: int | str = answer.status_code
            if got == expected == 200 and case.listing and caller is not None:
                listed = target.listed in [item["id"] for item in answer.json()["data"]]
                expected = "listed" if case.visible(caller) else "not listed"
                got = "listed" if listed else "not listed"
            if got != expected:
                failures.append(
                    f"{case.method} {case.template} {case.variant} as "
                    f"{caller.username if caller else 'anonymous'}: expected {expected}, got "
                    f"{got} {answer.text[:160]}"
                )
        await stack.settle()
    assert failures == []
