"""A secret on real containers: it reaches the container, a rotation reaches the next start, and
its value appears nowhere else: not in API responses, logs, events, the catalog, the audit
rows, the workflow's Temporal history, the Temporal server's log or the Podman service's log."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest
from sqlalchemy import inspect, text
from temporalio.api.history.v1 import History

from catalog import database
from config.logging import OWN_LOGGERS, JsonFormatter
from tests.e2e.conftest import WORKLOADS, Stack, eventually, open_stack
from tests.e2e.test_faults import connect
from tests.support.processes import DevServer

SECRETS = "/api/v2/secrets/"


class Recorder(logging.Handler):
    """Every log record of the process (API thread and in-process worker), formatted with
    its extra fields, as the deployed processes would write them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def recording_logs() -> Iterator[Recorder]:
    recorder = Recorder()
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in (*OWN_LOGGERS, "temporalio")]
    levels = [root.level, *(logger.level for logger in loggers)]
    root.addHandler(recorder)
    root.setLevel(logging.INFO)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
        for logger, level in zip([root, *loggers], levels, strict=True):
            logger.setLevel(level)


def record_responses(stack: Stack) -> list[tuple[str, str]]:
    """(URL, headers and body) of every response the test's API client receives."""
    seen: list[tuple[str, str]] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        seen.append((str(response.request.url), f"{response.headers}\n{response.text}"))

    stack.api.event_hooks["response"].append(keep)
    return seen


async def container_env(stack: Stack, workload_id: str) -> str:
    response = await stack.invoke.get(f"/api/v2/endpoints/workloads/{workload_id}/cgi-bin/env")
    assert response.status_code == 200, response.text
    return response.text


async def catalog_dump(stack: Stack) -> dict[str, str]:
    """Every row of every table of the catalog, as text, by table."""
    engine = database.create_engine(stack.settings.catalog_url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            return {
                name: repr(
                    [tuple(row) for row in await conn.execute(text(f'SELECT * FROM "{name}"'))]
                )
                for name in names
            }
    finally:
        await engine.dispose()


async def history_bytes(stack: Stack, workload_id: str) -> bytes:
    """The workflow's history as protobuf bytes (payloads raw, not base64) and as JSON."""
    history = await stack.temporal.get_workflow_handle(f"workload-{workload_id}").fetch_history()
    raw = History(events=history.events).SerializeToString()
    return raw + history.to_json().encode()


async def restart(stack: Stack, workload_id: str) -> None:
    assert (await stack.api.post(f"{WORKLOADS}{workload_id}/stop/")).status_code == 202
    await stack.wait_status(workload_id, "stopped")
    assert (await stack.api.post(f"{WORKLOADS}{workload_id}/start/")).status_code == 202
    await stack.wait_status(workload_id, "running")


@dataclass
class LoggedStack:
    stack: Stack
    temporal_log: Path  # of a dev server of this test's own, at info level
    podman_log: Path | None  # None when the tests use WAPI_TEST_DOCKER_URL's engine
    task_queue: str


@pytest.fixture
async def logged(
    tmp_path: Path,
    docker_url: str,
    podman_log: Path | None,
    test_image: str,
    task_queue: str,
) -> AsyncIterator[LoggedStack]:
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log", log_level="info")
    server.start()
    try:
        client = await connect(server)
        async with open_stack(tmp_path, client, docker_url, test_image, task_queue) as stack:
            yield LoggedStack(stack, server.log_file, podman_log, task_queue)
    finally:
        server.stop()


async def podman_logs_a_pull(docker_url: str, marker: str) -> None:
    """A pull Podman logs ("Trying to pull ..."), of a name that never resolves (`.invalid`):
    proof the search below reads the log this service writes."""
    async with aiodocker.Docker(url=docker_url) as docker:
        with contextlib.suppress(aiodocker.DockerError):
            await docker.images.pull(f"registry.invalid/{marker}:1")


async def test_a_secret_reaches_its_container_and_nothing_else(logged: LoggedStack) -> None:
    stack = logged.stack
    first, second = (f"wapi-e2e-{secrets.token_hex(16)}" for _ in range(2))
    with recording_logs() as logs:
        responses = record_responses(stack)
        made = await stack.api.post(SECRETS, json={"name": "e2e-token", "value": first})
        assert made.status_code == 201, made.text
        secret_id = made.json()["id"]

        created = await stack.create(
            environmentVars=[
                {"name": "COLOR", "value": "red"},
                {"name": "API_TOKEN", "source": "secret", "secretId": secret_id},
            ]
        )
        wid = created["id"]
        await stack.wait_status(wid, "running")
        env = await eventually(
            lambda: stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/cgi-bin/env"),
            lambda r: r.status_code == 200,
            10,
            "the gateway to route to the workload",
        )
        assert f"API_TOKEN={first}" in env.text and "COLOR=red" in env.text

        rotated = await stack.api.post(f"{SECRETS}{secret_id}/rotate/", json={"value": second})
        assert rotated.status_code == 200 and rotated.json()["version"] == 2
        # Running containers keep the value they started with ...
        assert f"API_TOKEN={first}" in await container_env(stack, wid)
        # ... and the next start resolves the secret again.
        await restart(stack, wid)
        env_text = await eventually(
            lambda: container_env(stack, wid),
            lambda t: f"API_TOKEN={second}" in t,
            10,
            "the rotated value in the container",
        )
        assert first not in env_text

        events = await stack.events(wid)
        referenced = await stack.api.delete(f"{SECRETS}{secret_id}/")
        assert referenced.status_code == 409 and created["artifactId"] in referenced.text

    places: dict[str, str | bytes] = {
        "responses": repr([r for r in responses if not r[0].endswith("/cgi-bin/env")]),
        "logs": "\n".join(logs.lines),
        "events": repr(events),
        "history": await history_bytes(stack, wid),
        "Temporal server log": logged.temporal_log.read_bytes(),
        **{f"table {name}": rows for name, rows in (await catalog_dump(stack)).items()},
    }
    # The searches look in the right places: the id travels where the value must not.
    assert secret_id in places["responses"] and secret_id in places["table artifacts"]
    assert secret_id.encode() in places["history"]  # the plan in the history names the id
    assert "POST /secrets/ 201" in places["logs"]  # the API's access log
    assert "Running activity supervise" in places["logs"]  # the worker's
    assert "generation 2" in places["events"]
    assert "table audit_events" in places and "table workload_events" in places
    assert logged.task_queue.encode() in places["Temporal server log"]  # it logs at info
    if logged.podman_log is not None:
        marker = f"wapi-marker-{secrets.token_hex(8)}"
        await podman_logs_a_pull(stack.settings.docker_url or "", marker)
        places["Podman service log"] = logged.podman_log.read_bytes()
        assert marker.encode() in places["Podman service log"]
    for value in (first, second):
        leaks = [
            where
            for where, content in places.items()
            if (value.encode() in content if isinstance(content, bytes) else value in content)
        ]
        assert leaks == [], f"the secret's value appears in {leaks}"


async def test_a_secret_deleted_meanwhile_fails_the_start_naming_the_variable(
    stack: Stack,
) -> None:
    made = (await stack.api.post(SECRETS, json={"name": "gone", "value": "short-lived"})).json()
    created = await stack.create(
        environmentVars=[{"name": "API_TOKEN", "source": "secret", "secretId": made["id"]}]
    )
    wid = created["id"]
    await stack.wait_status(wid, "running")
    assert (await stack.api.post(f"{WORKLOADS}{wid}/stop/")).status_code == 202
    await stack.wait_status(wid, "stopped")
    # The API refuses while the artifact references it; a row can still vanish (a restore,
    # a manual fix), which the start must survive with a clear reason.
    assert (await stack.api.delete(f"{SECRETS}{made['id']}/")).status_code == 409
    engine = database.create_engine(stack.settings.catalog_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM secrets WHERE id = :id"), {"id": made["id"]})
    finally:
        await engine.dispose()

    assert (await stack.api.post(f"{WORKLOADS}{wid}/start/")).status_code == 202
    errored: dict[str, Any] = await stack.wait_status(wid, "errored")
    reason = errored["statusReason"]
    assert "'API_TOKEN'" in reason and made["id"] in reason, reason
    assert "short-lived" not in reason
