"""How audit rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import AuditEvent
from models.audit import AuditEventPublic


def present_audit_event(row: AuditEvent) -> AuditEventPublic:
    return AuditEventPublic(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_kind=row.actor_kind,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        request_id=row.request_id,
        source_ip=row.source_ip,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        summary=row.summary,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
