"""`wapi describe`: one resource for a person, with what belongs to it (replicas, swaps, tokens,
roles, versions) and its latest events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from cli.kinds import Kind
from cli.output import Column, age, as_yaml, plain, table
from client import ApiError, Client
from models.artifacts import ArtifactPublic, CollectionPublic
from models.deployments import DeploymentPublic, SwapPublic
from models.workloads import WorkloadPublic

LATEST_EVENTS = 10


def _fields(console: Console, pairs: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in pairs) + 2
    for name, value in pairs:
        shown = "-" if value in (None, "") else value
        console.print(f"{name + ':':<{width}}{shown}", markup=False, highlight=False)


def _section(console: Console, title: str, columns: list[Column], rows: Sequence[Any]) -> None:
    console.print(f"\n{title}:", markup=False)
    if rows:
        console.print(table(columns, rows), soft_wrap=True)
    else:
        console.print("  (none)")


EVENT_COLUMNS: list[Column] = [
    ("  AGE", lambda e: f"  {age(e.timestamp)}"),
    ("TYPE", lambda e: e.type),
    ("MESSAGE", lambda e: e.message),
]


def _workload(wapi: Client, console: Console, w: WorkloadPublic) -> None:
    version = f"v{w.artifact.version}" if w.artifact.version else "draft"
    _fields(
        console,
        [
            ("Name", w.name),
            ("ID", w.id),
            ("Status", w.status),
            ("Reason", w.status_reason),
            ("Artifact", f"{w.artifact.name} {version} ({w.artifact.id})"),
            ("Importance", w.importance),
            ("Generation", w.generation),
            ("Endpoint", w.endpoint),
            ("Created", f"{w.created_at:%Y-%m-%d %H:%M:%S} ({age(w.created_at)} ago)"),
        ],
    )
    groups: list[Column] = [
        ("  GROUP", lambda g: f"  {g.name}"),
        ("REPLICAS", lambda g: g.replica_count),
        ("BUNDLES", lambda g: ", ".join(g.resource_bundles) or "-"),
    ]
    _section(console, "Runtime", groups, w.runtime.container_groups)
    replicas: list[Column] = [
        ("  NAME", lambda r: f"  {r.name}"),
        ("STATE", lambda r: r.state),
        ("READY", lambda r: "yes" if r.ready else "no"),
        ("RESTARTS", lambda r: r.restarts),
        ("AGE", lambda r: age(r.started_at)),
        ("MESSAGE", lambda r: r.message),
    ]
    _section(console, "Replicas", replicas, wapi.workloads.replicas(w.id))
    events = wapi.workloads.events(w.id, order_by="-timestamp", limit=LATEST_EVENTS).data
    _section(console, "Events (newest first)", EVENT_COLUMNS, events)


def _swap_line(swap: SwapPublic | None) -> str | None:
    return f"{swap.id} to workload {swap.to_workload_id}: {swap.status}" if swap else None


def _deployment(wapi: Client, console: Console, d: DeploymentPublic) -> None:
    health = wapi.deployments.health(d.id, recent=0)
    ratio = health.availability.ratio
    _fields(
        console,
        [
            ("Name", d.name),
            ("ID", d.id),
            ("Status", d.status),
            ("Reason", d.status_reason),
            ("Health", d.health.status),
            ("Health reason", d.health.reason),
            ("Swap", _swap_line(d.swap)),
            ("Workload", d.workload_id),
            ("Endpoint", d.endpoint),
            ("Your role", d.role),
            ("Health path", d.health.path or "(the readiness probe's)"),
            ("Availability", "-" if ratio is None else f"{ratio:.2%} over the last hour"),
            ("Created", f"{d.created_at:%Y-%m-%d %H:%M:%S} ({age(d.created_at)} ago)"),
        ],
    )
    swaps: list[Column] = [
        ("  SWAP", lambda s: f"  {s.id}"),
        ("STATUS", lambda s: s.status),
        ("FROM", lambda s: s.from_workload_id),
        ("TO", lambda s: s.to_workload_id),
        ("AGE", lambda s: age(s.created_at)),
        ("REASON", lambda s: s.reason),
    ]
    _section(console, "Swaps (newest first)", swaps, wapi.deployments.swaps(d.id, limit=5).data)
    try:  # owners only
        tokens = wapi.deployments.tokens(d.id)
        roles = wapi.deployments.roles(d.id, limit=100).data
    except ApiError:
        tokens, roles = [], []
    token_columns: list[Column] = [
        ("  NAME", lambda t: f"  {t.name}"),
        ("PREFIX", lambda t: t.prefix),
        ("REVOKED", lambda t: "yes" if t.revoked_at else "no"),
    ]
    _section(console, "Invoke tokens", token_columns, tokens)
    role_columns: list[Column] = [
        ("  USER", lambda r: f"  {r.username}"),
        ("ROLE", lambda r: r.role),
    ]
    _section(console, "Shared with", role_columns, roles)
    events = wapi.deployments.events(d.id, order_by="-timestamp", limit=LATEST_EVENTS).data
    _section(console, "Events (newest first)", EVENT_COLUMNS, events)


def _artifact(console: Console, a: ArtifactPublic) -> None:
    _fields(
        console,
        [
            ("Name", a.name),
            ("ID", a.id),
            ("Type", a.type),
            ("Status", a.status),
            ("Version", a.version),
            ("Collection", a.collection_id),
            ("Description", a.description),
            ("Created", f"{a.created_at:%Y-%m-%d %H:%M:%S} by {a.creator.username}"),
        ],
    )
    console.print("\nSpec:", markup=False)
    spec = plain(a.spec)
    console.print("  " + as_yaml(spec).replace("\n", "\n  "), markup=False, highlight=False)


def _collection(wapi: Client, console: Console, c: CollectionPublic) -> None:
    _fields(
        console, [("Name", c.name), ("ID", c.id), ("Type", c.type), ("Versions", c.num_artifacts)]
    )
    versions: list[Column] = [
        ("  VERSION", lambda a: f"  v{a.version}"),
        ("ID", lambda a: a.id),
        ("NAME", lambda a: a.name),
        ("REGISTERED", lambda a: age(a.registered_at)),
    ]
    _section(console, "Versions", versions, list(wapi.collections.versions.all(c.id)))


def describe_resource(wapi: Client, console: Console, kind: Kind, item: Any) -> None:
    if isinstance(item, WorkloadPublic):
        _workload(wapi, console, item)
    elif isinstance(item, DeploymentPublic):
        _deployment(wapi, console, item)
    elif isinstance(item, ArtifactPublic):
        _artifact(console, item)
    elif isinstance(item, CollectionPublic):
        _collection(wapi, console, item)
    else:
        console.print(f"{kind.name}:", markup=False)
        console.print("  " + as_yaml(plain(item)).replace("\n", "\n  "), markup=False)
