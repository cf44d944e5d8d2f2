"""The resource kinds `wapi get`, `describe` and `delete` know: how to list them, find one by
name or id, and which columns a table shows.

A reference is an id, or a name (the API does not force names to be unique: two matches are an
error that lists both ids). `kind/name` (e.g. `deployment/hello-prod`) picks the kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from cli.output import Column, age
from cli.session import ExitCode, UserError
from client import Client, NotFoundError
from models.workloads import WorkloadPublic

_ID = re.compile(r"^[0-9a-f]{24}$")


@dataclass(frozen=True)
class Kind:
    name: str
    plural: str
    aliases: tuple[str, ...]
    listing: Callable[[Client, dict[str, Any]], Iterable[Any]]
    getter: Callable[[Client, str], Any]
    columns: list[Column]
    wide: list[Column] = field(default_factory=list)
    filters: tuple[str, ...] = ()  # which of --status/--search the list route takes
    by_name: bool = True

    def find(self, wapi: Client, ref: str) -> Any:
        """The one resource `ref` names (an id, or a name)."""
        if _ID.match(ref) or not self.by_name:
            try:
                return self.getter(wapi, ref)
            except NotFoundError:
                if not self.by_name:
                    raise
        matches = self.named(wapi, ref)
        if not matches:
            raise UserError(f"no {self.name} named or with id '{ref}'", ExitCode.NOT_FOUND)
        if len(matches) > 1:
            ids = ", ".join(m.id for m in matches)
            raise UserError(
                f"{len(matches)} {self.plural} are named '{ref}' ({ids}); use an id",
                ExitCode.CONFLICT,
            )
        return matches[0]

    def named(self, wapi: Client, name: str) -> list[Any]:
        options = {"search": name} if "search" in self.filters else {}
        return [item for item in self.listing(wapi, options) if item.name == name]


def _workload_replicas(workload: WorkloadPublic) -> int:
    return sum(group.replica_count for group in workload.runtime.container_groups)


def _artifact_label(workload: WorkloadPublic) -> str:
    artifact = workload.artifact
    return f"{artifact.name}:v{artifact.version}" if artifact.version else f"{artifact.name}:draft"


def _no_single_audit_event(ref: str) -> Any:
    raise UserError(
        f"audit events are listed, not read one by one: wapi get auditevents (not '{ref}')",
        ExitCode.USAGE,
    )


def _memory(value: int) -> str:
    return f"{value / 2**30:g}Gi" if value >= 2**30 else f"{value / 2**20:g}Mi"


NAME_ID: list[Column] = [("NAME", lambda r: r.name), ("ID", lambda r: r.id)]

KINDS: list[Kind] = [
    Kind(
        "artifact",
        "artifacts",
        ("art", "artifacts"),
        lambda w, o: w.artifacts.list.all(**o),
        lambda w, ref: w.artifacts.get(ref),
        [
            *NAME_ID,
            ("TYPE", lambda r: r.type),
            ("STATUS", lambda r: r.status),
            ("VERSION", lambda r: r.version),
            ("AGE", lambda r: age(r.created_at)),
        ],
        [("COLLECTION", lambda r: r.collection_id)],
        filters=("status", "search"),
    ),
    Kind(
        "collection",
        "collections",
        ("col", "collections", "artifactcollection", "artifactcollections"),
        lambda w, o: w.collections.list.all(**o),
        lambda w, ref: w.collections.get(ref),
        [
            *NAME_ID,
            ("TYPE", lambda r: r.type),
            ("VERSIONS", lambda r: r.num_artifacts),
            ("LATEST", lambda r: f"v{r.last_version_number}"),
            ("AGE", lambda r: age(r.created_at)),
        ],
        filters=("search",),
    ),
    Kind(
        "workload",
        "workloads",
        ("wl", "workloads"),
        lambda w, o: w.workloads.list.all(**o),
        lambda w, ref: w.workloads.get(ref),
        [
            *NAME_ID,
            ("STATUS", lambda r: r.status),
            ("REPLICAS", _workload_replicas),
            ("ARTIFACT", _artifact_label),
            ("AGE", lambda r: age(r.created_at)),
        ],
        [("IMPORTANCE", lambda r: r.importance), ("ENDPOINT", lambda r: r.endpoint)],
        filters=("status", "search"),
    ),
    Kind(
        "deployment",
        "deployments",
        ("dep", "deploy", "deployments"),
        lambda w, o: w.deployments.list.all(**o),
        lambda w, ref: w.deployments.get(ref),
        [
            *NAME_ID,
            ("STATUS", lambda r: r.status),
            ("HEALTH", lambda r: r.health.status),
            ("WORKLOAD", lambda r: r.workload_id),
            ("ROLE", lambda r: r.role),
            ("AGE", lambda r: age(r.created_at)),
        ],
        [("ENDPOINT", lambda r: r.endpoint)],
        filters=("status", "search"),
    ),
    Kind(
        "secret",
        "secrets",
        ("secrets",),
        lambda w, o: w.secrets.list.all(**o),
        lambda w, ref: w.secrets.get(ref),
        [*NAME_ID, ("VERSION", lambda r: r.version), ("UPDATED", lambda r: age(r.updated_at))],
        filters=("search",),
    ),
    Kind(
        "bundle",
        "bundles",
        ("bundles", "resourcebundle", "resourcebundles"),
        lambda w, o: w.bundles.list.all(**o),
        lambda w, ref: w.bundles.get(ref),
        [
            ("ID", lambda r: r.id),
            ("NAME", lambda r: r.name),
            ("CPU", lambda r: r.cpu_count),
            ("MEMORY", lambda r: _memory(r.memory_bytes)),
            ("GPU", lambda r: r.gpu_count or "-"),
        ],
        by_name=False,
    ),
    Kind(
        "apikey",
        "apikeys",
        ("apikeys", "key", "keys"),
        lambda w, o: w.api_keys.list.all(**o),
        lambda w, ref: w.api_keys.get(ref),
        [
            *NAME_ID,
            ("USER", lambda r: r.username),
            ("ROLE", lambda r: r.role),
            ("PREFIX", lambda r: r.prefix),
            ("REVOKED", lambda r: age(r.revoked_at) if r.revoked_at else "-"),
        ],
    ),
    Kind(
        "auditevent",
        "auditevents",
        ("auditevents", "audit"),
        lambda w, o: w.audit.list.all(**o),
        lambda w, ref: _no_single_audit_event(ref),
        [
            ("SEQ", lambda r: r.seq),
            ("AT", lambda r: r.at.isoformat(timespec="seconds")),
            ("ACTOR", lambda r: r.actor),
            ("ACTION", lambda r: r.action),
            ("RESOURCE", lambda r: r.resource_id),
            ("STATUS", lambda r: r.status_code),
        ],
        by_name=False,
    ),
]


def kind_named(word: str) -> Kind:
    lowered = word.lower()
    for kind in KINDS:
        if lowered in (kind.name, kind.plural, *kind.aliases):
            return kind
    names = ", ".join(k.plural for k in KINDS)
    raise UserError(f"unknown kind '{word}'; one of: {names}", ExitCode.USAGE)


def split_ref(ref: str, default: str) -> tuple[Kind, str]:
    """`deployment/hello-prod` -> (deployment, hello-prod); a bare name is of `default`."""
    word, slash, rest = ref.partition("/")
    return (kind_named(word), rest) if slash else (kind_named(default), ref)


def short(model: BaseModel) -> str:
    name = getattr(model, "name", None)
    identifier = getattr(model, "id", "")
    return f"{name} ({identifier})" if name else str(identifier)
