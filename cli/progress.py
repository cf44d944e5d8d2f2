"""The live progress of long actions (`--wait`): each resource's status, replicas ready, and
events as they happen.

On a terminal it is a Rich live table with the latest events under it. Into a pipe or a CI log
it prints one line when a resource's status or readiness changes and one per event, so a
script's log tells the same story.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from client import Client
from models.common import Page
from models.deployments import DeploymentPublic, SwapPublic
from models.workloads import WorkloadPublic

EVENTS_SHOWN = 8


@dataclass
class Row:
    status: str = "-"
    ready: str = ""
    note: str = ""

    def line(self, label: str) -> str:
        ready = f"  {self.ready} ready" if self.ready else ""
        note = f"  ({self.note})" if self.note else ""
        return f"{label}: {self.status}{ready}{note}"


class ProgressView:
    def __init__(self, wapi: Client, console: Console, live: bool | None = None) -> None:
        self.wapi = wapi
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.rows: dict[str, Row] = {}
        self.events: deque[str] = deque(maxlen=EVENTS_SHOWN)
        self._seen: dict[str, int] = {}  # events already shown, per resource
        self._display: Live | None = None

    def __enter__(self) -> Self:
        if self.live:
            self._display = Live(self._render(), console=self.console, refresh_per_second=4)
            self._display.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._display is not None:
            self._display.update(self._render())
            self._display.stop()

    def say(self, text: str) -> None:
        """A line above the table (or in the log)."""
        self.console.print(text, markup=False, highlight=False)

    def _render(self) -> Group:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for title in ("RESOURCE", "STATUS", "READY", ""):
            table.add_column(title, overflow="fold")
        for label, row in self.rows.items():
            table.add_row(label, row.status, row.ready, row.note)
        return Group(table, Text("\n".join(self.events), style="dim"))

    def _update(self, label: str, row: Row) -> None:
        if self.rows.get(label) == row:
            return
        self.rows[label] = row
        if self._display is not None:
            self._display.update(self._render())
        else:
            self.say(row.line(label))

    def _new_events(self, key: str, label: str, page_at: Callable[[int], Page[Any]]) -> None:
        if key not in self._seen:  # events from before this command are history, not progress
            self._seen[key] = page_at(0).total_count if key.startswith("old:") else 0
        page = page_at(self._seen[key])
        self._seen[key] += len(page.data)
        for event in page.data:
            text = f"{event.timestamp.astimezone():%H:%M:%S} {label} {event.type}: {event.message}"
            self.events.append(text)
            if self._display is None:
                self.say(f"  {text}")
        if page.data and self._display is not None:
            self._display.update(self._render())

    def on_workload(self, label: str, fresh: bool = False) -> Callable[[WorkloadPublic], None]:
        """A `wait_until` callback: status, replicas ready, new events of one workload."""

        def poll(workload: WorkloadPublic) -> None:
            key = f"{'new' if fresh else 'old'}:workload:{workload.id}"
            self._new_events(
                key, label, lambda at: self.wapi.workloads.events(workload.id, offset=at)
            )
            replicas = self.wapi.workloads.replicas(workload.id)
            wanted = sum(group.replica_count for group in workload.runtime.container_groups)
            ready = f"{sum(r.ready for r in replicas)}/{wanted}"
            self._update(label, Row(workload.status, ready, workload.status_reason or ""))

        return poll

    def on_deployment(self, label: str, fresh: bool = False) -> Callable[[DeploymentPublic], None]:
        def poll(deployment: DeploymentPublic) -> None:
            key = f"{'new' if fresh else 'old'}:deployment:{deployment.id}"
            self._new_events(
                key, label, lambda at: self.wapi.deployments.events(deployment.id, offset=at)
            )
            note = deployment.status_reason or f"health {deployment.health.status}"
            self._update(label, Row(deployment.status, note=note))

        return poll

    def on_swap(self, label: str) -> Callable[[SwapPublic], None]:
        def poll(swap: SwapPublic) -> None:
            key = f"old:deployment:{swap.deployment_id}"
            self._new_events(
                key, label, lambda at: self.wapi.deployments.events(swap.deployment_id, offset=at)
            )
            self._update(f"{label} swap", Row(swap.status, note=swap.reason or ""))

        return poll
