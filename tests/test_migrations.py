"""The migrations produce exactly the schema the tables declare, on both backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, insert, inspect, select, table, text

from api.app import create_first_admin_key
from catalog import database
from catalog.tables import (
    ApiKey,
    Artifact,
    ArtifactCollection,
    Base,
    Deployment,
    DeploymentRollout,
    JSONType,
    Secret,
    UTCDateTime,
    Workload,
    utcnow,
)
from config.settings import Settings
from services import demand
from services.demand import DemandReport


async def test_migrations_match_the_tables(catalog_url: str) -> None:
    engine = database.create_engine(catalog_url)
    try:
        await database.migrate(engine)
        await database.migrate(engine)  # idempotent: a restart migrates again

        def diff(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_roles_move_to_resource_roles_and_creators_become_owners(catalog_url: str) -> None:
    """0004: deployment roles move over unchanged; every other resource gets its creator as
    owner, and a deployment whose creator gave up ownership is left as its owners chose."""
    engine = database.create_engine(catalog_url)

    def to_0003(connection: Any) -> None:
        config = database.alembic_config(str(connection.engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")

    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            await conn.run_sync(to_0003)
        sessions = database.create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            session.add(ArtifactCollection(id="c1", name="c", type="generic", created_by="erin"))
            await session.flush()  # no relationships: the ORM does not order inserts
            session.add(
                Artifact(id="a1", name="a", type="generic", status="registered", version=1,
                         collection_id="c1", spec={}, created_by="erin")
            )  # fmt: skip
            await session.flush()
            session.add(
                Workload(id="w1", name="w", artifact_id="a1", status="stopped", runtime={},
                         created_by="frank")
            )  # fmt: skip
            await session.flush()
            session.add(Secret(id="s1", name="s", ciphertext="x", created_by="gina"))
            await session.flush()
            # Deployments as they were at 0003 (later revisions add columns).
            columns = ("id", "name", "description", "workload_id", "status", "created_by")
            at_0003 = table(
                "deployments",
                *(column(name) for name in columns),
                column("health", JSONType),
                column("created_at", UTCDateTime()),
                column("updated_at", UTCDateTime()),
            )
            for deployment_id, creator in (("d1", "alice"), ("d2", "carol")):
                await session.execute(
                    insert(at_0003).values(id=deployment_id, name="d", description="",
                        workload_id="w1", status="inactive", health={}, created_by=creator,
                        created_at=utcnow(), updated_at=utcnow())
                )  # fmt: skip
        async with engine.begin() as conn:
            for deployment_id, username, role in (
                ("d1", "alice", "owner"),
                ("d1", "bob", "consumer"),
                ("d2", "dave", "owner"),
            ):
                await conn.execute(
                    text("INSERT INTO deployment_roles VALUES (:d, :u, :r, 'alice', :at)"),
                    {"d": deployment_id, "u": username, "r": role, "at": utcnow()},
                )
        await database.migrate(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT resource_type, resource_id, username, role FROM resource_roles")
            )
            roles = sorted(tuple(row) for row in rows)
        assert roles == [
            ("artifact", "a1", "erin", "owner"),
            ("collection", "c1", "erin", "owner"),
            ("deployment", "d1", "alice", "owner"),
            ("deployment", "d1", "bob", "consumer"),
            ("deployment", "d2", "dave", "owner"),
            ("secret", "s1", "gina", "owner"),
            ("workload", "w1", "frank", "owner"),
        ]
    finally:
        await engine.dispose()


async def test_deployment_status_becomes_the_health_verdict(catalog_url: str) -> None:
    """0008: the old status (the health verdict, or a swap) moves to `health_status` in the
    new words; `status` is then read from the workload (and 0007 gets the old words back)."""
    engine = database.create_engine(catalog_url)

    old = {"d1": "active", "d2": "degraded", "d3": "inactive", "d4": "swapping"}
    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade_to("0007"))
        sessions = database.create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            session.add(ArtifactCollection(id="c1", name="c", type="generic", created_by="erin"))
            await session.flush()
            session.add(
                Artifact(id="a1", name="a", type="generic", status="registered", version=1,
                         collection_id="c1", spec={}, created_by="erin")
            )  # fmt: skip
            await session.flush()
            for workload_id, status in (("w1", "running"), ("w2", "stopping")):
                session.add(
                    Workload(id=workload_id, name="w", artifact_id="a1", status=status,
                             runtime={}, created_by="erin")
                )  # fmt: skip
            await session.flush()
            columns = ("id", "name", "description", "workload_id", "status", "status_reason",
                       "created_by")  # fmt: skip
            at_0007 = table(
                "deployments",
                *(column(name) for name in columns),
                column("health", JSONType),
                column("created_at", UTCDateTime()),
                column("updated_at", UTCDateTime()),
            )
            for deployment_id, status in old.items():
                workload_id = "w2" if deployment_id == "d3" else "w1"
                await session.execute(
                    insert(at_0007).values(id=deployment_id, name="d", description="",
                        workload_id=workload_id,
                        status=status, status_reason="why", health={}, created_by="erin",
                        created_at=utcnow(), updated_at=utcnow())
                )  # fmt: skip
        await database.migrate(engine)
        async with sessions() as session:
            rows = await session.scalars(select(Deployment).order_by(Deployment.id))
            found = [(d.id, d.status, d.health_status, d.health_reason) for d in rows]
        assert found == [
            ("d1", "running", "healthy", "why"),
            ("d2", "running", "degraded", "why"),
            ("d3", "stopped", "unknown", "why"),
            ("d4", "running", "unknown", "why"),
        ]
        async with engine.begin() as conn:
            await conn.run_sync(downgrade_to("0007"))
            back = await conn.execute(text("SELECT id, status FROM deployments ORDER BY id"))
            assert dict(tuple(row) for row in back) == {**old, "d4": "inactive"}
    finally:
        await engine.dispose()


def downgrade_to(revision: str) -> Any:
    def run(connection: Any) -> None:
        config = database.alembic_config(str(connection.engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    return run


def table_names(connection: Any) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_rollouts_table_comes_and_goes_with_0009(catalog_url: str) -> None:
    """0009: rollouts and per-workload traffic get tables of their own; a downgrade to 0008
    removes them and nothing else, and upgrading again gives an empty one that takes a
    rollout."""
    engine = database.create_engine(catalog_url)
    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade_to("0009"))
            before = await conn.run_sync(table_names)
            await conn.run_sync(downgrade_to("0008"))
            after = await conn.run_sync(table_names)
        assert before - after == {"deployment_rollouts", "workload_traffic"}
        await database.migrate(engine)
        sessions = database.create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            session.add(ArtifactCollection(id="c1", name="c", type="generic", created_by="erin"))
            await session.flush()
            session.add(
                Artifact(id="a1", name="a", type="generic", status="registered", version=1,
                         collection_id="c1", spec={}, created_by="erin")
            )  # fmt: skip
            await session.flush()
            session.add(
                Workload(id="w1", name="w", artifact_id="a1", status="running", runtime={},
                         created_by="erin")
            )  # fmt: skip
            await session.flush()
            session.add(
                Deployment(id="d1", name="d", workload_id="w1", health_status="unknown",
                           health={}, created_by="erin")
            )  # fmt: skip
            await session.flush()
            steps = [{"setWeight": 10}, {"pause": {}}]
            session.add(
                DeploymentRollout(id="r1", deployment_id="d1", stable_workload_id="w1",
                                  candidate_workload_id="w2", steps=steps, status="starting",
                                  options={}, history=[], requested_by="erin")
            )  # fmt: skip
        async with sessions() as session:
            rollout = await session.get(DeploymentRollout, "r1")
            assert rollout is not None
            assert (rollout.steps, rollout.weight, rollout.current_step) == (steps, 0, None)
    finally:
        await engine.dispose()


async def test_gateway_demand_comes_and_goes_with_0010(catalog_url: str) -> None:
    """0010 adds the table the gateways publish their load in; 0009 has none of it."""
    engine = database.create_engine(catalog_url)
    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade_to("0010"))
            before = await conn.run_sync(table_names)
            await conn.run_sync(downgrade_to("0009"))
            after = await conn.run_sync(table_names)
        assert before - after == {"gateway_demand"}
        await database.migrate(engine)
        sessions = database.create_sessionmaker(engine)
        now = time.time()
        async with sessions() as session, session.begin():
            await demand.write(session, "gw-1", DemandReport(now, {"w": 2.5}, {"w": 1}))
        async with sessions() as session:
            loads = await demand.read(session, now)
        assert (loads["w"].in_flight, loads["w"].held, loads.reporters) == (2.5, 1, 1)
    finally:
        await engine.dispose()


async def test_workload_replacements_come_and_go_with_0011(catalog_url: str) -> None:
    """0011 adds the table of in-place replacements; 0010 has none of it."""
    engine = database.create_engine(catalog_url)
    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            before = await conn.run_sync(table_names)
            await conn.run_sync(downgrade_to("0010"))
            after = await conn.run_sync(table_names)
        assert before - after == {"workload_replacements"}
        await database.migrate(engine)
        async with engine.begin() as conn:
            assert "workload_replacements" in await conn.run_sync(table_names)
    finally:
        await engine.dispose()


async def test_processes_starting_together_make_one_admin_key(settings: Settings) -> None:
    """API processes started at once on one catalog (the scale-out layout) all start: one
    creates the first admin key, the others find it (its key is unique: a second insert
    would fail that process's start)."""
    engines = [database.create_engine(settings.catalog_url) for _ in range(8)]
    try:
        await database.migrate(engines[0])
        for engine in engines:  # connected first, so that their transactions overlap
            async with engine.connect():
                pass
        await asyncio.gather(
            *(
                create_first_admin_key(settings, database.create_sessionmaker(engine))
                for engine in engines
            )
        )
        async with engines[0].connect() as conn:
            keys = (await conn.execute(select(ApiKey.role))).scalars().all()
        assert keys == ["admin"]
    finally:
        for engine in engines:
            await engine.dispose()
