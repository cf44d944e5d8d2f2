"""How fast a call held at zero replicas reaches the autoscaler through the catalog.

A gateway's demand publisher (`api/gateway/demand.py`) and a deciding autoscaler
(`services/autoscaler.py`, its lock taken) run on one catalog, SQLite and then PostgreSQL
(a throwaway cluster, as the tests start one). Twenty workloads sit at zero replicas; in each
round the publisher holds a call for the next one, and the time from `hold()` to the
autoscaler's scale Update for that workload is measured (the Update is recorded, not sent:
Temporal's part is in `bench/autoscale.py`'s cold start). The autoscaler's tick is set to a
minute, so only the wake path (the publisher's immediate write, the decider's 0.1 s read of
the table) can explain a sub-second figure. Printed: median and worst per backend.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import _stack  # noqa: F401  (puts the repository on the path, for tests.support)

from api.gateway.demand import Demand
from catalog import database
from catalog.tables import Artifact, Workload
from config.settings import Settings
from services import decider_lock
from services.autoscaler import Autoscaler
from services.lifecycle import WorkloadLifecycle
from services.refs import WorkloadRef
from tests.factories import spec
from tests.support import catalogs
from tests.support.postgres import postgres_server
from workflows.workload_contract import TransitionResult

ROUNDS = 20
ZERO = {
    "enabled": True,
    "minReplicaCount": 0,
    "maxReplicaCount": 2,
    "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10}],
}


class Recorded(WorkloadLifecycle):
    """The moment of the first scale Update per workload, recorded instead of sent."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def scale(
        self, ref: WorkloadRef, actor: str, replicas: dict[str, int], reason: str | None = None
    ) -> TransitionResult:
        self.at.setdefault(ref.id, time.monotonic())
        self.changed.set()
        return TransitionResult(status="running", generation=1)


async def measure(url: str, state_dir: Path) -> list[float]:
    engine = database.create_engine(url)
    await database.migrate(engine)
    sessions = database.create_sessionmaker(engine)
    names = [f"w{index:02d}" for index in range(ROUNDS)]
    async with sessions() as session, session.begin():
        for name in names:
            session.add(Artifact(id=f"a{name}", name="a", type="generic", status="draft",
                                 spec=spec(), created_by="bench"))  # fmt: skip
            await session.flush()
            group = {"name": "default", "replicaCount": 0, "autoscaling": ZERO}
            runtime = {"containerGroups": [group]}
            session.add(Workload(id=name, name=name, artifact_id=f"a{name}", status="running",
                                 runtime=runtime, created_by="bench"))  # fmt: skip
    recorded = Recorded()
    settings = Settings(state_dir=state_dir, autoscaler_tick_seconds=60)
    autoscaler = Autoscaler(
        settings, sessions, recorded, lock=decider_lock.for_catalog(engine, state_dir)
    )
    gateway = Demand(sessions)
    autoscaler.start()
    gateway.start()
    waits: list[float] = []
    try:
        await asyncio.sleep(3)  # the first tick has seen them all at zero
        assert len(autoscaler.at_zero) == ROUNDS, autoscaler.at_zero
        for name in names:
            await asyncio.sleep(random.uniform(0.3, 0.8))  # at any phase of the 0.1 s read
            recorded.changed.clear()
            held_at = time.monotonic()
            gateway.hold(name)
            async with asyncio.timeout(30):
                while name not in recorded.at:
                    await recorded.changed.wait()
                    recorded.changed.clear()
            waits.append(recorded.at[name] - held_at)
            gateway.release(name)
    finally:
        await gateway.stop()
        await autoscaler.stop()
        await engine.dispose()
    return waits


def show(backend: str, waits: list[float]) -> None:
    print(
        f"{backend}: a held call reached the autoscaler's decision in "
        f"{statistics.median(waits) * 1000:.0f} ms median, {max(waits) * 1000:.0f} ms worst "
        f"({len(waits)} rounds, tick 60 s)"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory)
        show("SQLite", await measure(f"sqlite+aiosqlite:///{state / 'catalog.db'}", state))
        with postgres_server() as server:
            catalogs.create_template(server)
            url = await catalogs.create_database(server)
            try:
                show("PostgreSQL", await measure(url, state))
            finally:
                await catalogs.drop_database(server, url)


if __name__ == "__main__":
    asyncio.run(main())
