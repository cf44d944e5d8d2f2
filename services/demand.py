"""Calls in flight per workload, published by every gateway process for the autoscaler.

Each gateway process writes one small JSON file in the demand directory (`Settings.demand_dir`)
twice a second, and at once when a call starts waiting for a workload scaled to zero: per
workload, the average number of its calls in flight since the last write (sampled ten times a
second) and how many calls it holds at zero. The autoscaler adds up the fresh files. Files are
written atomically (a rename), so a reader sees a whole report or the previous one.

Why files and not the catalog: the load changes every second and only the autoscaler reads it;
writing it into the database would cost every process a write a second for nothing durable.
The directory is shared by the processes of one machine (as the gateway's metrics are); see
docs/architecture.md for what that means on several machines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

FRESH_SECONDS: Final = 5.0  # an older report comes from a process that stopped writing


@dataclass
class Load:
    """What the gateways see of one workload."""

    in_flight: float = 0.0  # average calls in flight, summed over processes
    held: int = 0  # calls waiting for a replica to start


@dataclass
class DemandReport:
    at: float  # wall-clock time of the write
    in_flight: dict[str, float] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)


def write(directory: Path, name: str, report: DemandReport) -> None:
    path = directory / f"{name}.json"
    temporary = directory / f"{name}.tmp"
    body = {"at": report.at, "inFlight": report.in_flight, "held": report.held}
    try:
        temporary.write_text(json.dumps(body))
        temporary.replace(path)
    except OSError as error:
        log.warning("could not publish demand", extra={"error": str(error)})


class Loads(dict[str, Load]):
    """The load per workload over every fresh report, and how many gateway processes sent
    one: with none, nothing is known (no gateway here, or none running), which is not the
    same as no load."""

    reporters: int = 0


def read(directory: Path, now: float | None = None) -> Loads:
    now = time.time() if now is None else now
    loads = Loads()
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
            body = json.loads(path.read_text())
            if now - float(body["at"]) > FRESH_SECONDS:
                continue
            for workload, value in body["inFlight"].items():
                loads.setdefault(workload, Load()).in_flight += float(value)
            for workload, count in body["held"].items():
                loads.setdefault(workload, Load()).held += int(count)
            loads.reporters += 1
    return loads


def forget(directory: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        (directory / f"{name}.json").unlink()
