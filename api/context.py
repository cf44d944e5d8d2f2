"""Long-lived clients the API shares across requests, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.gateway.credentials import Credentials
from config.settings import Settings
from runtimes.base import Runtime
from services.audit_writer import AuditWriter
from services.bundles import BundleCatalog
from services.limits import Limits
from services.status_watch import StatusWatch


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bundles: BundleCatalog
    limits: Limits
    temporal: Client
    runtime: Runtime | None
    credentials: Credentials
    audit: AuditWriter
    status_watch: StatusWatch
