"""Secrets through the API on SQLite and PostgreSQL, their encryption, references and resolution.

Why one module of this length: one feature end to end (API, storage, encryption, references,
resolution) on both databases, sharing its fixtures.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.supervision import SupervisionActivities
from api.app import create_app
from catalog.tables import Artifact, Secret, Workload
from config.settings import Settings
from models.plan import ContainerPlan, GroupPlan, RunPlan, SecretEnv
from models.spec import ArtifactSpec
from models.workloads import WorkloadRuntime
from runtimes.base import Runtime
from runtimes.errors import StartFailedError
from runtimes.local.containers import environment
from services import secrets
from services.bundles import BundleCatalog
from services.keyring import (
    DecryptionError,
    Keyring,
    KeyringError,
    generate_key,
    load_keyring,
    parse_keys,
)
from services.workload_runtime import build_plan
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import artifact, spec
from tests.test_auth import make_key

SECRETS = "/api/v2/secrets/"
ARTIFACTS = "/api/v2/registry/artifacts/"
WORKLOADS = "/api/v2/console/workloads/"
VALUE = "s3cr3t-value-for-tests-7c1f"
METADATA = {"id", "name", "description", "version", "creator", "createdAt", "updatedAt"}


def secret_var(secret_id: str, name: str = "API_TOKEN") -> dict[str, str]:
    return {"name": name, "source": "secret", "secretId": secret_id}


def locs(response: httpx.Response) -> set[tuple[Any, ...]]:
    return {tuple(d["loc"]) for d in response.json()["detail"]}


def sessions_of(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = app.state.context.sessions
    return sessions


async def create(api: httpx.AsyncClient, name: str = "api-token", value: str = VALUE) -> Any:
    response = await api.post(SECRETS, json={"name": name, "value": value})
    assert response.status_code == 201, response.text
    return response.json()


# The API


async def test_create_read_rotate_delete(api: httpx.AsyncClient) -> None:
    response = await api.post(
        SECRETS, json={"name": "openai-key", "description": "for the agent", "value": VALUE}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == METADATA
    assert created["version"] == 1 and created["creator"] == {
        "id": "admin",
        "username": "admin",
        "email": "",
    }
    assert response.headers["location"] == f"{SECRETS}{created['id']}/"
    url = f"{SECRETS}{created['id']}/"
    assert (await api.get(url)).json() == created

    listed = (await api.get(SECRETS, params={"search": "OPENAI"})).json()
    assert listed["totalCount"] == 1 and listed["data"] == [created]
    assert (await api.get(SECRETS, params={"search": "nothing"})).json()["count"] == 0

    rotated = await api.post(f"{url}rotate/", json={"value": "another-value"})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["version"] == 2 and rotated.json()["id"] == created["id"]
    assert rotated.json()["updatedAt"] > created["updatedAt"]
    assert rotated.json()["createdAt"] == created["createdAt"]
    assert (await api.get(url)).json()["version"] == 2

    assert (await api.delete(url)).status_code == 204
    assert (await api.get(url)).status_code == 404
    assert (await api.post(f"{url}rotate/", json={"value": "x"})).status_code == 404
    assert (await api.delete(url)).status_code == 404


async def test_list_pages_and_orders(api: httpx.AsyncClient) -> None:
    for name in ("b-key", "a-key", "c-key"):
        await create(api, name)
    first = (await api.get(SECRETS, params={"limit": 2})).json()
    assert [s["name"] for s in first["data"]] == ["a-key", "b-key"]
    assert first["totalCount"] == 3 and first["next"] is not None
    newest = (await api.get(SECRETS, params={"orderBy": "-createdAt", "limit": 1})).json()
    assert newest["data"][0]["name"] == "c-key"
    assert (await api.get(SECRETS, params={"orderBy": "value"})).status_code == 422


async def test_duplicate_name_is_409(api: httpx.AsyncClient) -> None:
    await create(api, "dup")
    response = await api.post(SECRETS, json={"name": "dup", "value": "other"})
    assert response.status_code == 409 and "dup" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "has space", "value": VALUE}, ("body", "name")),
        ({"name": "-leading", "value": VALUE}, ("body", "name")),
        ({"name": "x" * 129, "value": VALUE}, ("body", "name")),
        ({"name": "ok", "value": ""}, ("body", "value")),
        ({"name": "ok", "value": VALUE + "\x00"}, ("body", "value")),
        ({"name": "ok", "value": "é" * 40000}, ("body", "value")),  # 80000 bytes
        ({"name": "ok"}, ("body", "value")),
        ({"name": "ok", "value": VALUE, "extra": 1}, ("body", "extra")),
    ],
)
async def test_bad_input_is_422_and_never_echoed(
    api: httpx.AsyncClient, body: dict[str, Any], loc: tuple[str, ...]
) -> None:
    response = await api.post(SECRETS, json=body)
    assert response.status_code == 422, response.text
    assert loc in locs(response)
    value = body.get("value")
    if value:
        assert value not in response.text
    assert (await api.get(SECRETS)).json()["totalCount"] == 0


async def test_the_size_limit_is_64_kib(api: httpx.AsyncClient) -> None:
    await create(api, "big", "x" * 65536)
    too_big = await api.post(SECRETS, json={"name": "bigger", "value": "x" * 65537})
    assert too_big.status_code == 422


async def test_roles(app: FastAPI, api: httpx.AsyncClient) -> None:
    """Only what is shared is visible, and only owners with an editor key change it."""
    made = await create(api)
    url = f"{SECRETS}{made['id']}/"
    async with client_for(app, await make_key(api, "viewer")) as viewer:
        assert (await viewer.get(SECRETS)).json()["totalCount"] == 0
        assert (await viewer.get(url)).status_code == 404
        share = [{"username": "viewer", "role": "owner"}]
        shared = await api.patch(f"{url}sharedRoles/", json={"roles": share})
        assert shared.status_code == 204
        assert (await viewer.get(SECRETS)).json()["totalCount"] == 1
        assert (await viewer.get(url)).status_code == 200
        for refused in (  # the key's global role is a ceiling, whatever the role on the secret
            viewer.post(SECRETS, json={"name": "v", "value": "v"}),
            viewer.post(f"{url}rotate/", json={"value": "v"}),
            viewer.delete(url),
        ):
            assert (await refused).status_code == 403
    async with client_for(app, await make_key(api, "editor")) as editor:
        assert (await editor.post(f"{url}rotate/", json={"value": "v2"})).status_code == 404
        assert (await editor.delete(url)).status_code == 404
        made_by_editor = (await editor.post(SECRETS, json={"name": "e", "value": "v"})).json()
        assert made_by_editor["creator"]["username"] == "editor"
        own = f"{SECRETS}{made_by_editor['id']}/"
        assert (await editor.post(f"{own}rotate/", json={"value": "v2"})).status_code == 200
        assert (await editor.delete(own)).status_code == 204


async def test_an_unusable_key_is_503_and_not_echoed(
    settings: Settings, unreachable_temporal: Client
) -> None:
    broken = settings.model_copy(update={"secrets_key": SecretStr("not-a-key-material")})
    app = create_app(broken, temporal_client=unreachable_temporal)
    async with app.router.lifespan_context(app), client_for(app, ADMIN_KEY) as api:
        response = await api.post(SECRETS, json={"name": "x", "value": VALUE})
        assert response.status_code == 503
        assert "WAPI_SECRETS_KEY" in response.text and "not-a-key-material" not in response.text
        assert (await api.get(SECRETS)).status_code == 200  # metadata needs no key


# References from environment variables


async def test_artifacts_reference_secrets_by_id(api: httpx.AsyncClient) -> None:
    made = await create(api)
    env = [{"name": "PLAIN", "value": "x"}, secret_var(made["id"])]
    response = await api.post(ARTIFACTS, json=artifact(spec=spec(environmentVars=env)))
    assert response.status_code == 201, response.text
    variables = response.json()["spec"]["containerGroups"][0]["containers"][0]["environmentVars"]
    assert variables == [
        {"name": "PLAIN", "value": "x", "source": "string"},
        {"name": "API_TOKEN", "source": "secret", "secretId": made["id"]},
    ]
    assert VALUE not in response.text


async def test_unknown_secret_ids_are_422_at_their_path(api: httpx.AsyncClient) -> None:
    made = await create(api)
    env = [{"name": "A", "value": "x"}, secret_var("nope"), secret_var(made["id"], "B")]
    path = ("spec", "containerGroups", 0, "containers", 0, "environmentVars", 1, "secretId")

    created = await api.post(ARTIFACTS, json=artifact(spec=spec(environmentVars=env)))
    assert created.status_code == 422 and locs(created) == {("body", *path)}
    assert "secret 'nope' does not exist" in created.json()["message"]

    draft = (await api.post(ARTIFACTS, json=artifact())).json()
    url = f"{ARTIFACTS}{draft['id']}/"
    patched = await api.patch(url, json={"spec": spec(environmentVars=env)})
    assert patched.status_code == 422 and locs(patched) == {("body", *path)}
    replaced = await api.put(url, json=artifact(spec=spec(environmentVars=env)))
    assert replaced.status_code == 422 and locs(replaced) == {("body", *path)}

    inline = {"name": "w", "artifact": {"spec": spec(environmentVars=env)}}
    workload = await api.post(WORKLOADS, json=inline)
    assert workload.status_code == 422 and locs(workload) == {("body", "artifact", *path)}

    override = {
        "name": "w",
        "artifactId": draft["id"],
        "runtime": {
            "containerGroups": [
                {"containers": [{"name": "main", "environmentVars": [secret_var("gone")]}]}
            ]
        },
    }
    workload = await api.post(WORKLOADS, json=override)
    assert workload.status_code == 422
    assert locs(workload) == {
        ("body", "runtime", "containerGroups", 0, "containers", 0, "environmentVars", 0, "secretId")
    }
    assert (await api.get(ARTIFACTS)).json()["totalCount"] == 1  # nothing half-written


async def test_spec_rule_and_secret_problems_come_together(api: httpx.AsyncClient) -> None:
    body = artifact(spec=spec(environmentVars=[secret_var("nope"), secret_var("x", "PORT")]))
    response = await api.post(ARTIFACTS, json=body)
    env = ("body", "spec", "containerGroups", 0, "containers", 0, "environmentVars")
    assert locs(response) == {(*env, 0, "secretId"), (*env, 1, "name"), (*env, 1, "secretId")}


async def test_env_var_shapes_keep_their_json_paths(api: httpx.AsyncClient) -> None:
    env = [
        {"name": "A", "value": 5},
        {"name": "B", "source": "secret"},
        {"name": "C", "source": "vault", "value": "x"},
        {"name": "D", "source": "secret", "secretId": "x", "value": "leaked?"},
    ]
    response = await api.post(ARTIFACTS, json=artifact(spec=spec(environmentVars=env)))
    assert response.status_code == 422
    root = ("body", "spec", "containerGroups", 0, "containers", 0, "environmentVars")
    assert locs(response) == {
        (*root, 0, "value"),
        (*root, 1, "secretId"),
        (*root, 2),
        (*root, 3, "value"),
    }
    assert "leaked?" not in response.text


async def test_a_referenced_secret_cannot_be_deleted(app: FastAPI, api: httpx.AsyncClient) -> None:
    made = await create(api)
    url = f"{SECRETS}{made['id']}/"
    draft = (
        await api.post(
            ARTIFACTS, json=artifact(spec=spec(environmentVars=[secret_var(made["id"])]))
        )
    ).json()
    # A workload's runtime may reference it too (written directly: no Temporal here).
    override = {"name": "main", "environmentVars": [secret_var(made["id"])]}
    runtime = {"containerGroups": [{"name": "default", "containers": [override]}]}
    async with sessions_of(app)() as session, session.begin():
        other = Artifact(name="o", type="generic", status="draft", spec=spec(), created_by="t")
        session.add(other)
        await session.flush()
        workload = Workload(
            name="w", artifact_id=other.id, status="stopped", runtime=runtime, created_by="t"
        )
        session.add(workload)
        await session.flush()
        workload_id, other_id = workload.id, other.id

    refused = await api.delete(url)
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert draft["id"] in message and workload_id in message and other_id not in message

    await api.patch(f"{ARTIFACTS}{draft['id']}/", json={"spec": spec()})
    async with sessions_of(app)() as session, session.begin():
        found = await session.get(Workload, workload_id)
        assert found is not None
        found.runtime = {"containerGroups": []}
    assert (await api.delete(url)).status_code == 204


async def test_users_of_ignores_ids_outside_environment_variables(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    made = await create(api)
    # The id in a description-like place (an image tag) does not make a reference.
    body = artifact(spec=spec(image=f"registry.example.com/app:{made['id']}"))
    assert (await api.post(ARTIFACTS, json=body)).status_code == 201
    async with sessions_of(app)() as session:
        assert await secrets.users_of(session, made["id"]) == ([], [])


# Encryption at rest


async def test_the_database_holds_ciphertext_only(app: FastAPI, api: httpx.AsyncClient) -> None:
    async def stored_rows() -> str:
        async with app.state.context.engine.connect() as conn:
            return str([tuple(row) for row in await conn.execute(text("SELECT * FROM secrets"))])

    made = await create(api)
    assert made["id"] in await stored_rows() and VALUE not in await stored_rows()
    await api.post(f"{SECRETS}{made['id']}/rotate/", json={"value": VALUE + "-2"})
    assert VALUE not in await stored_rows()
    async with sessions_of(app)() as session:
        stored = await session.scalar(select(Secret.ciphertext))
    assert stored is not None and stored.startswith("v1.")
    keyring = load_keyring(app.state.context.settings)
    assert keyring.decrypt(made["id"], stored) == VALUE + "-2"
    with pytest.raises(DecryptionError, match="not configured"):
        Keyring(parse_keys(generate_key(), "test")).decrypt(made["id"], stored)


def test_encryption_round_trip_and_tampering() -> None:
    keyring = Keyring(parse_keys(generate_key(), "test"))
    sealed = keyring.encrypt("id1", VALUE)
    assert keyring.decrypt("id1", sealed) == VALUE
    assert keyring.encrypt("id1", VALUE) != sealed  # a fresh nonce each time
    # Bound to its secret: copied onto another row, it does not decrypt.
    with pytest.raises(DecryptionError, match="altered or belongs to another secret"):
        keyring.decrypt("id2", sealed)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(DecryptionError):
        keyring.decrypt("id1", flipped)
    with pytest.raises(DecryptionError, match="format"):
        keyring.decrypt("id1", "plain text")


def test_a_new_key_can_stand_in_front_of_an_old_one() -> None:
    old, new = generate_key(), generate_key()
    sealed = Keyring(parse_keys(old, "test")).encrypt("id1", VALUE)
    both = Keyring(parse_keys(f"{new}, {old}", "test"))
    assert both.decrypt("id1", sealed) == VALUE
    assert Keyring(parse_keys(new, "test")).decrypt("id1", both.encrypt("id1", "n")) == "n"


def test_malformed_keys_are_refused_without_being_echoed() -> None:
    for bad in ("", "short", "Zm9v" * 20, " , "):
        with pytest.raises(KeyringError) as caught:
            parse_keys(bad, "WAPI_SECRETS_KEY")
        if bad.strip(" ,"):
            assert bad not in str(caught.value)
    # Standard base64 (e.g. `openssl rand -base64 32`) works as well as URL-safe.
    raw = bytes(range(250, 256)) + bytes(26)
    assert parse_keys(base64.b64encode(raw).decode(), "x") == [raw]


def test_the_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    results: list[Keyring] = []
    # The API and the worker may start together: both must end up with the same key.
    threads = [
        threading.Thread(target=lambda: results.append(load_keyring(settings))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({keyring.current for keyring in results}) == 1
    path = settings.secrets_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["secrets.key"]  # no drafts left behind
    sealed = results[0].encrypt("id", VALUE)
    assert load_keyring(Settings(state_dir=tmp_path / "state")).decrypt("id", sealed) == VALUE

    configured = generate_key()
    explicit = load_keyring(
        Settings(state_dir=tmp_path / "state", secrets_key=SecretStr(configured))
    )
    assert explicit.current == Keyring(parse_keys(configured, "x")).current != results[0].current
    assert configured not in repr(explicit) and configured not in repr(
        Settings(secrets_key=SecretStr(configured))
    )


# Run plans and resolution in the supervising activity


def test_plans_carry_secret_ids_never_values() -> None:
    artifact_spec = ArtifactSpec.model_validate(
        spec(
            name="main",
            primary=True,
            environmentVars=[
                {"name": "PLAIN", "value": "x"},
                secret_var("s1", "TOKEN"),
                secret_var("s2", "REPLACED"),
            ],
        )
    )
    runtime = WorkloadRuntime.model_validate(
        {
            "containerGroups": [
                {
                    "containers": [
                        {
                            "name": "main",
                            "environmentVars": [
                                {"name": "REPLACED", "value": "literal"},
                                secret_var("s3", "PLAIN"),
                                secret_var("s4", "PORT"),
                            ],
                        }
                    ]
                }
            ]
        }
    )
    plan = build_plan("w1", 1, artifact_spec, runtime, BundleCatalog.load())
    container = plan.groups[0].containers[0]
    assert container.env == {"REPLACED": "literal", "WORKLOAD_ID": "w1", "PORT": "8080"}
    assert container.secret_env == [
        SecretEnv(name="PLAIN", secret_id="s3"),
        SecretEnv(name="TOKEN", secret_id="s1"),
    ]


def plan_with(*variables: SecretEnv) -> RunPlan:
    container = ContainerPlan(name="main", image="x", primary=True, secret_env=list(variables))
    return RunPlan(
        workload_id="w1",
        generation=1,
        groups=[GroupPlan(name="default", replicas=1, containers=[container])],
    )


async def test_the_activity_resolves_exactly_the_named_secrets(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    wanted = await create(api, "wanted")
    await create(api, "unrelated", "unrelated-value")
    settings: Settings = app.state.context.settings
    runtime = cast(Runtime, None)  # `_secrets` does not touch it
    activities = SupervisionActivities(sessions_of(app), runtime, load_keyring(settings))

    assert await activities._secrets(plan_with()) == {}
    plan = plan_with(
        SecretEnv(name="A", secret_id=wanted["id"]), SecretEnv(name="B", secret_id="gone")
    )
    # A missing secret is left out; the runtime then fails the start naming the variable.
    assert await activities._secrets(plan) == {wanted["id"]: VALUE}

    wrong = SupervisionActivities(
        sessions_of(app), runtime, Keyring(parse_keys(generate_key(), "t"))
    )
    with pytest.raises(ApplicationError) as caught:
        await wrong._secrets(plan)
    assert caught.value.non_retryable and caught.value.type == "WorkloadFailed"
    assert "environment variables A, B:" in str(caught.value)  # both named, in order
    assert "WAPI_SECRETS_KEY" in str(caught.value)
    assert VALUE not in str(caught.value)


def test_the_local_runtime_names_a_variable_without_its_value() -> None:
    container = plan_with(SecretEnv(name="API_TOKEN", secret_id="gone")).groups[0].containers[0]
    with pytest.raises(StartFailedError, match=r"'API_TOKEN'.*'gone'"):
        environment(container, {})
    assert environment(container, {"gone": "v"}) == ["API_TOKEN=v"]
