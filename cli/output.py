"""Printing resources: `-o table` (the default), `wide`, `json`, `yaml` or `name`.

`json` and `yaml` print exactly what the API answers (camelCase), one object or a list."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

Column = tuple[str, Callable[[Any], object]]


class Format(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


def plain(value: BaseModel | dict[str, Any]) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return value


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2)


def as_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip()


def age(moment: datetime | None) -> str:
    """`42s`, `5m`, `3h`, `2d`: how long ago."""
    if moment is None:
        return "-"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(columns: Sequence[Column], rows: Sequence[Any]) -> Table:
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for title, _ in columns:
        grid.add_column(title, overflow="fold")
    for row in rows:
        grid.add_row(*("-" if (v := get(row)) is None else str(v) for _, get in columns))
    return grid


def emit(
    console: Console,
    items: Sequence[BaseModel] | BaseModel,
    fmt: Format,
    columns: Sequence[Column],
    wide: Sequence[Column] = (),
    kind: str = "",
) -> None:
    many = not isinstance(items, BaseModel)
    rows: Sequence[BaseModel] = items if not isinstance(items, BaseModel) else [items]
    if fmt in (Format.json, Format.yaml):
        data = [plain(r) for r in rows] if many else plain(rows[0])
        console.out(as_json(data) if fmt is Format.json else as_yaml(data), highlight=False)
    elif fmt is Format.name:
        for row in rows:
            console.print(f"{kind}/{getattr(row, 'name', None) or getattr(row, 'id', '')}")
    else:
        chosen = [*columns, *wide] if fmt is Format.wide else list(columns)
        console.print(table(chosen, rows), soft_wrap=True)
