"""The typed client against the real app: typed errors with the server's body, pages, retries.

Lifecycle helpers (`wait_until`, swaps, logs, invoke) run against real containers in
`tests/e2e/test_client_e2e.py`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    RetryPolicy,
    UnavailableError,
)
from client.waiting import FIRST_PAUSE, pauses, wait_sync
from models.artifacts import ArtifactCreate
from models.secrets import SecretCreate
from tests import factories
from tests.conftest import ADMIN_KEY
from tests.support.live_server import serve

FAST = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.02)


@pytest.fixture
def api_url(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture
def wapi(api_url: str) -> Iterator[Client]:
    with Client(api_url, ADMIN_KEY, retry=FAST) as client:
        yield client


def test_models_in_and_out(wapi: Client) -> None:
    draft = wapi.artifacts.create(ArtifactCreate.model_validate(factories.artifact("hello")))
    assert draft.status == "draft" and draft.spec.container_groups[0].containers[0].primary
    registered = wapi.artifacts.register(draft.id)
    assert registered.version == 1 and registered.collection_id
    versions = wapi.collections.versions(registered.collection_id)
    assert [a.id for a in versions.data] == [draft.id]


def test_errors_carry_the_servers_code_detail_and_request_id(wapi: Client, api_url: str) -> None:
    with pytest.raises(NotFoundError) as missing:
        wapi.workloads.get("no-such-workload")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert missing.value.request_id and missing.value.request_id in str(missing.value)

    with pytest.raises(InvalidInputError) as invalid:
        wapi.artifacts.create({"name": "x", "spec": {"containerGroups": [{"containers": [{}]}]}})
    locations = [detail.loc for detail in invalid.value.detail]
    assert ["body", "spec", "containerGroups", 0, "containers", 0, "imageUri"] in locations

    registered = wapi.artifacts.create({**factories.artifact("frozen"), "status": "registered"})
    with pytest.raises(ConflictError) as frozen:
        wapi.artifacts.update(registered.id, {"description": "changed"})
    assert frozen.value.code == "conflict"

    with (
        Client(api_url, "wapi_wrong-key", retry=FAST) as stranger,
        pytest.raises(AuthenticationError),
    ):
        stranger.api_keys.me()


def test_pages_and_iterating_over_every_item(wapi: Client) -> None:
    for index in range(5):
        wapi.secrets.create(SecretCreate.model_validate({"name": f"s{index}", "value": "v"}))
    first = wapi.secrets.list(limit=2, order_by="name")
    assert [s.name for s in first.data] == ["s0", "s1"] and first.total_count == 5
    assert [s.name for s in wapi.secrets.list.all(limit=2, order_by="name")] == [
        f"s{i}" for i in range(5)
    ]


def test_a_secret_value_is_sent_though_the_model_hides_it(wapi: Client) -> None:
    created = wapi.secrets.create(SecretCreate.model_validate({"name": "k", "value": "v1"}))
    rotated = wapi.secrets.rotate(created.id, {"value": "v2"})
    assert rotated.version == 2


async def test_the_async_client_speaks_the_same_routes(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://testserver", ADMIN_KEY, transport=transport) as wapi:
        assert (await wapi.api_keys.me()).role == "admin"
        await wapi.artifacts.create(factories.artifact("a1"))
        names = [a.name async for a in wapi.artifacts.list.all(limit=1)]
        assert names == ["a1"]
        with pytest.raises(NotFoundError):
            await wapi.deployments.get("missing")
        ready = await wapi.service.ready()  # 503 is data here, not an error
        assert ready["checks"]["temporal"].startswith("unreachable")


def flaky(statuses: list[int], retry_after: str | None = "0") -> httpx.MockTransport:
    """Answers each status in turn, then 200 with an empty page."""
    calls = iter(statuses)

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(calls, 200)
        if status == 200:
            page: dict[str, object] = {"count": 0, "totalCount": 0, "data": []}
            page |= {"next": None, "previous": None}
            return httpx.Response(200, json=page)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"code": "unavailable", "message": "try later", "requestId": "r1"}
        return httpx.Response(status, json=body, headers=headers)

    return httpx.MockTransport(answer)


def test_503_and_429_are_retried_after_retry_after() -> None:
    with Client("http://wapi", "k", retry=FAST, transport=flaky([503, 429])) as wapi:
        assert wapi.workloads.list().total_count == 0


def test_retries_give_up_with_the_servers_error() -> None:
    with (
        Client("http://wapi", "k", retry=FAST, transport=flaky([503] * 5)) as wapi,
        pytest.raises(UnavailableError) as error,
    ):
        wapi.workloads.list()
    assert error.value.retry_after == 0 and error.value.request_id == "r1"


def test_retry_after_sets_the_delay_and_backoff_grows_without_it() -> None:
    policy = RetryPolicy(backoff_seconds=1, max_backoff_seconds=4, max_retry_after_seconds=10)
    assert policy.delay(1, retry_after=3) == 3
    assert policy.delay(1, retry_after=3600) == 10
    assert 0.5 <= policy.delay(1) <= 1 and 2 <= policy.delay(3) <= 4 and policy.delay(9) <= 4


def test_an_unreachable_api_is_a_connection_error() -> None:
    with (
        Client("http://127.0.0.1:9", "k", retry=FAST) as wapi,
        pytest.raises(ConnectionFailedError),
    ):
        wapi.service.health()


def test_a_post_whose_answer_was_lost_is_not_sent_again() -> None:
    sent: list[str] = []

    def broken(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        raise httpx.ReadError("connection reset", request=request)

    transport = httpx.MockTransport(broken)
    with Client("http://wapi", "k", retry=FAST, transport=transport) as wapi:
        with pytest.raises(ConnectionFailedError):
            wapi.workloads.start("w1")
        with pytest.raises(ConnectionFailedError):
            wapi.workloads.get("w1")
    assert sent == ["POST", "GET", "GET", "GET"]


def test_a_wait_looks_again_soon_then_every_interval() -> None:
    first = list(itertools.islice(pauses(1.0), 10))
    assert first[0] == FIRST_PAUSE
    assert all(later > earlier for earlier, later in itertools.pairwise(first[:9]))
    assert first[-1] == 1.0  # capped at the interval
    assert list(itertools.islice(pauses(0.01), 3)) == [0.01, 0.01, 0.01]


def test_a_wait_on_a_quick_change_returns_within_the_first_pauses() -> None:
    readings = iter(["submitted", "initializing", "running"])
    started = time.monotonic()
    seen = wait_sync(lambda _hold: next(readings), lambda s: s == "running", "it", 10, 1.0)
    assert seen == "running"
    assert time.monotonic() - started < 1.0  # two pauses of 50 and 75 ms, not two seconds


@pytest.mark.parametrize(
    ("held", "expected"), [(False, [0.0, FIRST_PAUSE, FIRST_PAUSE * 1.5]), (True, [0.0, 0.2, 0.2])]
)
def test_a_wait_asks_the_server_to_hold_its_readings(held: bool, expected: list[float]) -> None:
    """The first reading answers at once; a server that holds readings is asked for the whole
    interval (it answers on news anyway), one that may not get growing pauses."""
    readings = iter(["submitted", "initializing", "running"])
    holds: list[float] = []

    def fetch(hold: float) -> str:
        holds.append(hold)
        return next(readings)

    assert wait_sync(fetch, lambda s: s == "running", "it", 10, 0.2, held=held) == "running"
    assert holds == pytest.approx(expected, abs=0.01)
