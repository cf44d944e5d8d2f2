"""Stateful fuzzing of the API on a live stack: PostgreSQL (the stricter backend: types, NUL
bytes, integer ranges), a Temporal dev server, a worker and real containers on Podman.

Seeded rounds over every operation of the OpenAPI document (creates first, deletes last)
call each with schemathesis-generated inputs: documented examples, schema-valid and
schema-violating. What the API creates feeds the next calls (the part OpenAPI links would
play): path ids come from the resources made so far (or are random), and ids and images
inside bodies are replaced by live ones part of the time, so valid creates, edits, starts,
stops and deletes really happen.
Every answer must be below 500, valid inputs must get documented answers, and every
operation must answer at least one 2xx to a generated call: an operation the rounds leave
without one is called again with generated inputs on state made for it through the API
(tests/support/fuzz_links.py: a stopped workload to start, a swap in progress to cancel, a
token to revoke), a few times, each on fresh state.

What is adjusted, and why: `replicaCount` is capped at 2 (a 2-core machine runs the
containers) and images not from `localhost` are refused by the registry allow-list (a pull
would leave loopback); logs are not followed (`follow=true` on a running workload is an
endless stream by design; tests/runtimes/local/test_logs.py follows them); a workload `GET`
waits at most half a second for the status it names (`waitSeconds` up to 30 would make the
run minutes longer; tests/test_status_wait.py waits). Invoke routes
are not in this run: on the API they always answer 421 (the gateway serves them;
tests/test_gateway_*.py).

Why one module of this length: the rounds, the ids they learn, the adjustments and the checks
share one live state and read best together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from catalog import database
from catalog.tables import Workload
from config.settings import Settings
from runtimes.factory import build_runtime
from services.bundles import BundleCatalog
from tests.conftest import ADMIN_KEY
from tests.support import catalogs
from tests.support.fuzz_links import Links
from tests.support.live_server import serve
from worker import build_worker

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# Which path parameter an id found in a route's answers fills: by the route's collection.
ID_KINDS = {
    "/api/v2/registry/artifacts/": "artifactId",
    "/api/v2/registry/artifactCollections/": "collectionId",
    "/api/v2/console/workloads/": "workloadId",
    "/api/v2/console/deployments/": "deploymentId",
    "/api/v2/resourceBundles/": "bundleId",
    "/api/v2/apiKeys/": "keyId",
    "/api/v2/secrets/": "secretId",
}
TOKENS = re.compile(r"^/api/v2/console/deployments/\{deploymentId\}/tokens/")
ROUNDS = 3  # each prepares one deployment (a running container) and calls every operation
CASES_PER_ROUND = 6
# Generated calls, each on fresh linked state, of an operation the rounds left without a 2xx.
REACH_ATTEMPTS = 8
BODY_REFERENCES = ("artifactId", "workloadId", "collectionId")


@dataclass
class Live:
    url: str
    image: str
    ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    random: random.Random = field(default_factory=lambda: random.Random(15))
    linked: list[str] = field(default_factory=list)  # operations called on linked state


@pytest.fixture(scope="module")
async def live(
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
) -> AsyncIterator[Live]:
    state: Path = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        state_dir=state,
        database_url=await catalogs.create_database(postgres_url),
        bootstrap_admin_key=ADMIN_KEY,
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_task_queue="wapi-fuzz",
        docker_url=docker_url,
        allowed_registries=["localhost"],
        ready_timeout_seconds=20,
        restart_backoff_seconds=0.5,
        restart_backoff_max_seconds=2,
        crash_loop_limit=2,
        update_timeout_seconds=20,
    )
    runtime = build_runtime(settings)
    assert runtime is not None
    engine = database.create_engine(settings.catalog_url)
    sessions = database.create_sessionmaker(engine)
    worker = build_worker(temporal_env.client, settings, sessions, runtime, BundleCatalog.load())
    try:
        with serve(create_app(settings)) as url:
            async with worker:
                yield Live(url, test_image)
    finally:
        async with sessions() as session:
            ids = list(await session.scalars(select(Workload.id)))
        for workload_id in ids:
            await runtime.remove(workload_id)
        await runtime.close()
        await engine.dispose()


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result}"
        operation = result.ok()
        if not operation.path.startswith("/api/v2/endpoints/"):
            found.append(operation)
    return found


def _kind(path: str) -> str | None:
    """The kind of resource a route answers with: its collection, one item, or a clone."""
    if TOKENS.match(path) and not path.endswith("{tokenId}/"):
        return "tokenId"
    for prefix, kind in ID_KINDS.items():
        rest = path.removeprefix(prefix)
        if rest != path and re.fullmatch(r"(\{\w+\}/(clone/)?)?", rest):
            return kind
    return None


def _learn(live: Live, path: str, answer: Any) -> None:
    """Remember the ids an answer names, by the kind of resource they identify."""
    kind = _kind(path)
    items = answer.get("data") if isinstance(answer, dict) and "data" in answer else [answer]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if kind and isinstance(item.get("id"), str) and item["id"] not in live.ids[kind]:
            live.ids[kind].append(item["id"])
        for reference in BODY_REFERENCES:
            value = item.get(reference)
            if isinstance(value, str) and value not in live.ids[reference]:
                live.ids[reference].append(value)


# A workload comes from an artifact id or an inline artifact; a rollout's candidate is a
# workload or one made from an artifact (with a runtime): one of each pair, never both.
ONE_SOURCE = [("artifactId", "artifact"), ("workloadId", "artifactId")]


def _adjust(body: Any, live: Live, rnd: random.Random, links: dict[str, str] | None) -> Any:
    """Live ids and the test image in some places (all, with links: the ids made for the
    call); replica counts capped (see the top)."""
    if isinstance(body, list):
        return [_adjust(item, live, rnd, links) for item in body]
    if not isinstance(body, dict):
        return body
    odds = 0.8 if links is None else 1.0
    adjusted = {}
    for pair in ONE_SOURCE:
        if all(key in body for key in pair):
            # The field examples, combined, name both sources, which is a 422 by design;
            # keep one of them (the linked one, with links).
            kept = next((key for key in pair if links and key in links), None)
            kept = kept or rnd.choice(pair)
            body = {k: v for k, v in body.items() if k == kept or k not in pair}
    if "workloadId" in body and "runtime" in body:
        body = {k: v for k, v in body.items() if k != "runtime"}  # a runtime needs an artifact
    for key, value in body.items():
        if links and key in links:
            value = links[key]
        elif key in BODY_REFERENCES and live.ids[key] and rnd.random() < odds:
            value = rnd.choice(live.ids[key])
        elif key == "imageUri" and rnd.random() < odds:
            value = live.image
        elif key == "replicaCount" and isinstance(value, int) and not isinstance(value, bool):
            value = min(value, 2)
        adjusted[key] = _adjust(value, live, rnd, links)
    return adjusted


def _draw_case(data: st.DataObject, operation: Any, valid_only: bool) -> tuple[Any, GenerationMode]:
    """A case from the operation's documented examples, or generated to fit its schema, or
    (unless `valid_only`) generated to violate it."""
    sources = ["examples", "positive"] + ([] if valid_only else ["negative"])
    source = data.draw(st.sampled_from(sources), label="source")
    examples = operation.get_strategies_from_examples(fill_missing=True)
    if source == "examples" and examples:
        return data.draw(st.one_of(examples), label="case"), GenerationMode.POSITIVE
    mode = GenerationMode.NEGATIVE if source == "negative" else GenerationMode.POSITIVE
    try:
        return data.draw(operation.as_strategy(generation_mode=mode), label="case"), mode
    except Exception:  # an operation with nothing to violate: no negative case exists
        return data.draw(operation.as_strategy(), label="case"), GenerationMode.POSITIVE


def _call(live: Live, data: st.DataObject, operation: Any, links: Links | None = None) -> None:
    """One generated call of `operation`, with live ids (with `links`, valid inputs on ids
    made for it, until it answers a 2xx); its answer checked and learnt from."""
    rnd = live.random  # choices that depend on the live state: outside hypothesis's draws
    case, mode = _draw_case(data, operation, valid_only=links is not None)
    made = None
    if links is not None:
        if _succeeded(live, operation.label):  # after the draws: hypothesis replays them
            return
        made = links.for_operation(operation.method, operation.path)
    for parameter in operation.path_parameters:
        known = live.ids.get(parameter.name)
        chosen = None
        if made and parameter.name in made:
            chosen = made[parameter.name]
        elif known and rnd.random() < 0.85:
            chosen = rnd.choice(known)
        if chosen is not None:
            case.path_parameters = {**(case.path_parameters or {}), parameter.name: chosen}
    if case.query and str(case.query.get("follow")).lower() == "true":
        case.query["follow"] = "false"  # see the top: a followed log of a running workload
    if case.query and "waitForStatus" in case.query:
        held = case.query.get("waitSeconds")
        # See the top; what the API refuses (a negative, not a number) stays, to be refused.
        if held is None or (isinstance(held, int | float) and held > 0.5):
            case.query["waitSeconds"] = 0.5
    if mode is GenerationMode.POSITIVE:
        if case.body is not None:
            case.body = _adjust(case.body, live, rnd, made)
        if case.headers and (made is not None or rnd.random() < 0.7):
            case.headers.pop("If-Match", None)  # mostly: a random ETag is a 412
    label = operation.label
    try:
        response = case.call(base_url=live.url, headers=HEADERS)
    except Exception as error:  # e.g. the server dropped the connection
        live.failures.append(f"{label} -> {error!r}: {case.as_curl_command()}")
        return
    live.answers[(label, response.status_code)] += 1
    if response.status_code >= 500:
        live.failures.append(
            f"{label} -> {response.status_code}: {case.as_curl_command()}\n{response.text[:500]}"
        )
    elif mode is GenerationMode.POSITIVE:
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as failure:
            live.failures.append(f"{label}: {str(failure)[:1500]}")
    if 200 <= response.status_code < 300 and response.content:
        with contextlib.suppress(ValueError):  # not JSON (metrics, logs)
            _learn(live, operation.path, response.json())


def _fuzz(live: Live, operations: list[Any]) -> None:
    """Rounds over every operation, creates first and deletes last, so later calls act on
    what earlier ones made; each round a few generated cases per operation. Then each
    operation still without a 2xx, on state linked to it."""
    order = {"post": 0, "put": 1, "patch": 2, "get": 3, "delete": 4}
    operations = sorted(operations, key=lambda op: order.get(op.method, 3))
    with httpx.Client(base_url=live.url, headers=HEADERS, timeout=60) as client:
        for path in ID_KINDS:
            answer = client.get(path, params={"limit": 100})
            _learn(live, path, answer.json())
        links = Links(client, live.image, lambda path, answer: _learn(live, path, answer))
        for _round in range(ROUNDS):
            # The states deployments, swaps and tokens need, which generated bodies reach
            # too rarely; not counted as coverage.
            links.deployment()
            for operation in operations:
                _exercise(live, operation, CASES_PER_ROUND)
        for operation in operations:
            if not _succeeded(live, operation.label):
                live.linked.append(operation.label)
                _exercise(live, operation, REACH_ATTEMPTS, links)


def _succeeded(live: Live, label: str) -> bool:
    return any(200 <= status < 300 for (done, status) in live.answers if done == label)


def _exercise(live: Live, operation: Any, cases: int, links: Links | None = None) -> None:
    @given(data=st.data())
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=True,  # seeded: the same inputs on every run
        phases=[Phase.generate],  # no shrinking on a live stack: the log says enough
        suppress_health_check=list(HealthCheck),
    )
    def exercise(data: st.DataObject) -> None:
        _call(live, data, operation, links)

    exercise()


@pytest.mark.timeout(900)  # about 1,000 calls: two to four minutes on a quiet machine
async def test_stateful_fuzz_finds_no_server_error(live: Live) -> None:
    operations = _operations(live.url)
    # In a thread: the worker runs in this event loop and must keep running.
    await asyncio.to_thread(_fuzz, live, operations)
    assert not live.failures, "\n\n".join(live.failures[:20])
    missing = sorted(op.label for op in operations if not _succeeded(live, op.label))
    assert not missing, f"operations that never answered 2xx: {missing}\n{dict(live.answers)}"
    logging.getLogger(__name__).info(
        "%d calls; on linked state: %s", sum(live.answers.values()), live.linked
    )
