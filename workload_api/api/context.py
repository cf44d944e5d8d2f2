"""Long-lived clients the API shares across requests, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from workload_api.api.directory import ReplicaDirectory
from workload_api.api.key_cache import Credentials
from workload_api.api.proxy import ReplicaProxy
from workload_api.runtimes.base import Runtime
from workload_api.services.audit_writer import AuditWriter
from workload_api.services.bundles import BundleCatalog
from workload_api.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bundles: BundleCatalog
    temporal: Client
    directory: ReplicaDirectory
    proxy: ReplicaProxy
    runtime: Runtime | None
    credentials: Credentials
    audit: AuditWriter
