"""Audit records: what a caller records (`AuditEntry`) and what the API shows of the chain."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from models.common import CamelModel

ActorKind = Literal["api_key", "invoke_token", "system", "anonymous"]


def clean_text(value: str, limit: int) -> str:
    """A string every backend stores byte for byte: no NUL (PostgreSQL rejects it), no lone
    surrogates (not UTF-8), at most `limit` characters (the column's width)."""
    text = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def clean_json(value: Any, depth: int = 0) -> Any:
    """JSON that reads back from JSONB and from SQLite exactly as written, so hashes match."""
    if depth > 8:
        return "..."
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        # JSONB prints large floats as integers; store them as integers in the first place.
        return int(value) if abs(value) >= 1e16 else value
    if isinstance(value, str):
        return clean_text(value, 1000)
    if isinstance(value, dict):
        return {clean_text(str(k), 200): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [clean_json(item, depth + 1) for item in items]
    return clean_text(str(value), 1000)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _latency(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)


def _clipped(limit: int) -> Any:
    return AfterValidator(lambda value: None if value is None else clean_text(value, limit))


class AuditEntry(BaseModel):
    """One thing that happened, as a caller records it. Values are cleaned on construction so
    that what is stored (and hashed) is exactly what every backend reads back."""

    model_config = ConfigDict(frozen=True)

    at: Annotated[datetime, AfterValidator(_utc)] = Field(default_factory=lambda: datetime.now(UTC))
    actor: Annotated[str, _clipped(100)]
    actor_kind: ActorKind = "api_key"
    action: Annotated[str, _clipped(100)]
    resource_type: Annotated[str, _clipped(50)]
    resource_id: Annotated[str | None, _clipped(64)] = None
    request_id: Annotated[str | None, _clipped(64)] = None
    source_ip: Annotated[str | None, _clipped(64)] = None
    status_code: int | None = Field(None, ge=0, le=999)
    latency_ms: Annotated[float | None, AfterValidator(_latency)] = None
    summary: Annotated[dict[str, Any], AfterValidator(clean_json)] = Field(default_factory=dict)


class AuditEventPublic(CamelModel):
    """One record of the audit log, with its place in the hash chain."""

    seq: int = Field(description="Position in the chain, from 1 without gaps.", examples=[42])
    at: datetime = Field(description="When it happened (UTC).")
    actor: str = Field(description="Username of the caller, or `anonymous`.", examples=["alice"])
    actor_kind: ActorKind = Field(description="How the actor authenticated.", examples=["api_key"])
    action: str = Field(description="What was done.", examples=["artifact.create"])
    resource_type: str = Field(examples=["artifact"])
    resource_id: str | None = Field(examples=["65f1c0ffee65f1c0ffee65f1"])
    request_id: str | None = Field(
        description="The request's `X-Request-ID`.", examples=["0f6c2c1e9b7d4f0a"]
    )
    source_ip: str | None = Field(description="The caller's address.", examples=["10.0.0.7"])
    status_code: int | None = Field(description="The HTTP status answered.", examples=[201])
    latency_ms: float | None = Field(examples=[12.5])
    summary: dict[str, Any] = Field(
        description="What changed: the request's top-level field names (never values) and "
        "what the route reported.",
        examples=[{"fields": ["name", "spec"], "keyId": "65f1c0ffee65f1c0ffee65f2"}],
    )
    prev_hash: str = Field(description="`hash` of the record before (64 zeros for the first).")
    hash: str = Field(description="SHA-256 over `prevHash` and this record's canonical JSON.")


class AuditVerification(CamelModel):
    """The result of walking the whole chain. Keep `headSeq`/`headHash` somewhere else: a later
    run given them as an anchor also detects that the newest records were cut off."""

    valid: bool = Field(examples=[True])
    checked: int = Field(description="Records read.", examples=[1042])
    head_seq: int | None = Field(description="The last record's seq.", examples=[1042])
    head_hash: str | None = Field(
        description="The last record's hash.",
        examples=["9f2c0b6a1e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b"],
    )
    first_bad_seq: int | None = Field(
        description="Where the chain breaks first, when it does.", examples=[None]
    )
    reason: str | None = Field(
        description="What is wrong there.",
        examples=[None],
    )
