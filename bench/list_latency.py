"""How API read latency grows with the number of workloads: 10 against 200 in the catalog.

Workloads are written straight into the catalog the API reads, through the same service
function the create route uses (`services.workloads.create_workload`), so no workflow or
container is started: reads come from the catalog alone, as they do in production.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

import httpx
from _stack import READY_PROBE, WORKLOADS, Stack, percentile, running_stack

from models.workloads import WorkloadCreate
from services.api_keys import Principal
from services.bundles import BundleCatalog
from services.workloads import create_workload

ADMIN = Principal(key_id="bench", username="admin", role="admin")

SIZES = (10, 200)
WARMUP = 20
IMAGE = "localhost/wapi-demo:bench"  # never run: no engine is started


async def fill(stack: Stack, total: int) -> str:
    """Add workloads until the catalog holds `total`; return the oldest one's id."""
    bundles = BundleCatalog.load()
    body = stack.body("list", READY_PROBE) | {"description": "a benchmark workload"}
    async with stack.sessions() as session, session.begin():
        have = (await stack.api.get(WORKLOADS, params={"limit": 1})).json()["totalCount"]
        for index in range(have, total):
            data = WorkloadCreate.model_validate(body | {"name": f"list-{index:03d}"})
            await create_workload(session, data, ADMIN, bundles)
    page = (await stack.api.get(WORKLOADS, params={"limit": 1, "orderBy": "createdAt"})).json()
    if page["totalCount"] != total:
        raise RuntimeError(f"expected {total} workloads, the API counts {page['totalCount']}")
    oldest: str = page["data"][0]["id"]
    return oldest


async def interleaved(
    apis: list[httpx.AsyncClient], paths: list[str], params: dict[str, int], n: int
) -> list[list[float]]:
    """Latencies of `n` GETs per API, alternating between the APIs so drift and noise from
    the rest of the machine hit every size alike."""
    measured: list[list[float]] = [[] for _ in apis]
    for round_ in range(WARMUP + n):
        for index, (api, path) in enumerate(zip(apis, paths, strict=True)):
            started = time.perf_counter()
            response = await api.get(path, params=params)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if round_ >= WARMUP:
                measured[index].append(elapsed)
    return measured


class FullCollections:
    """Pauses of Python's full (generation 2) garbage collections, in this process (the APIs
    run here, in threads): they are what the slowest requests wait on."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)


async def main(requests: int) -> None:
    results: dict[str, list[list[float]]] = {}
    async with running_stack(containers=False) as small, running_stack(containers=False) as large:
        stacks = [small, large]
        oldest = []
        for stack, size in zip(stacks, SIZES, strict=True):
            stack.image = IMAGE
            oldest.append(await fill(stack, size))
        apis = [stack.api for stack in stacks]
        collections = FullCollections()
        results["list ?limit=100"] = await interleaved(
            apis, [WORKLOADS] * 2, {"limit": 100}, requests
        )
        results["list ?limit=10"] = await interleaved(
            apis, [WORKLOADS] * 2, {"limit": 10}, requests
        )
        results["get one workload"] = await interleaved(
            apis, [f"{WORKLOADS}{wid}/" for wid in oldest], {}, requests
        )

    ms = 1000.0
    print("API read latency against the number of workloads in the catalog")
    print("  two live APIs (uvicorn on loopback), each on its own SQLite catalog, filled with")
    print("  services.workloads.create_workload (no workflows, no containers); one client sends")
    print(f"  sequential GETs alternating between them: {requests} each after {WARMUP} warm-up")
    print("  (list ?limit=100 returns 10 rows with 10 workloads and 100 rows with 200)")
    head = "".join(f"{f'{size} workloads p50/p99 (ms)':>28}" for size in SIZES)
    print(f"  {'':<18}{head}{'ratio 200/10 p50 / p99':>26}")
    for name, (few, many) in results.items():
        cells = "".join(
            f"{statistics.median(v) * ms:>19.2f} /{percentile(v, 0.99) * ms:>7.2f}"
            for v in (few, many)
        )
        p50 = statistics.median(many) / statistics.median(few)
        p99 = percentile(many, 0.99) / percentile(few, 0.99)
        print(f"  {name:<18}{cells}{p50:>16.2f}x /{p99:>6.2f}x")
    pauses = collections.pauses
    longest = f", longest {max(pauses) * ms:.0f} ms" if pauses else ""
    print(f"  full garbage collections during the measurement: {len(pauses)}{longest}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="per case and size")
    args = parser.parse_args()
    asyncio.run(main(args.requests))
