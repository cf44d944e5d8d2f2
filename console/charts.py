"""Small charts drawn on the server as inline SVG: no chart library, nothing to download.

Each chart is a row of bars or a line over time buckets, with its largest value as the scale
and a label per axis end. Colours come from CSS classes (console.css), so the page's style
sheet is the only place they are defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 600, 120, 18


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str  # a class in console.css: bar-ok, bar-bad, line-avg, line-max...


def _scale(series: Sequence[Series]) -> float:
    top = max((v for s in series for v in s.values if v is not None), default=0.0)
    return top if top > 0 else 1.0


def _frame(title: str, top: float, unit: str, starts: Sequence[datetime], body: str) -> Markup:
    first = starts[0].strftime("%H:%M") if starts else ""
    last = starts[-1].strftime("%H:%M") if starts else ""
    label = f"{top:g}{unit}" if top != 1.0 or unit else ""
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + PAD}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="none">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>'
        f"{body}"
        f'<text class="tick" x="2" y="12">{escape(label)}</text>'
        f'<text class="tick" x="2" y="{HEIGHT + PAD - 4}">{escape(first)} UTC</text>'
        f'<text class="tick end" x="{WIDTH - 2}" y="{HEIGHT + PAD - 4}">{escape(last)}</text>'
        "</svg>"
    )


def bars(
    title: str, starts: Sequence[datetime], stacked: Sequence[Series], unit: str = ""
) -> Markup:
    """Stacked bars, one per bucket (e.g. requests answered, then failed)."""
    count = max(len(starts), 1)
    totals = [sum(s.values[i] or 0 for s in stacked) for i in range(len(starts))]
    top = _scale([Series("total", totals, "")])
    width = WIDTH / count
    parts = []
    for i, start in enumerate(starts):
        base = float(HEIGHT)
        for series in stacked:
            value = series.values[i] or 0
            if value <= 0:
                continue
            height = value / top * (HEIGHT - PAD)
            base -= height
            parts.append(
                f'<rect class="{series.css}" x="{i * width + 0.5:.1f}" y="{base:.1f}" '
                f'width="{max(width - 1, 0.5):.1f}" height="{height:.1f}">'
                f"<title>{start:%H:%M} {escape(series.name)}: {value:g}{escape(unit)}</title>"
                "</rect>"
            )
    return _frame(title, top, unit, starts, "".join(parts))


def lines(title: str, starts: Sequence[datetime], series: Sequence[Series], unit: str) -> Markup:
    """A polyline per series; buckets without a value break the line."""
    count = max(len(starts), 1)
    top = _scale(series)
    step = WIDTH / count
    parts = []
    for one in series:
        segment: list[str] = []
        runs: list[list[str]] = []
        for i, value in enumerate(one.values):
            if value is None:
                if segment:
                    runs.append(segment)
                segment = []
                continue
            y = HEIGHT - value / top * (HEIGHT - PAD)
            segment.append(f"{i * step + step / 2:.1f},{y:.1f}")
        if segment:
            runs.append(segment)
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="{one.css}" cx="{cx}" cy="{cy}" r="2.5"/>')
            else:
                parts.append(f'<polyline class="{one.css}" points="{" ".join(run)}"/>')
    return _frame(title, top, unit, starts, "".join(parts))
