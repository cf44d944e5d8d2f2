"""The local runtime's pure pieces: probe timing rules, log decoding, names, create-configs."""

from __future__ import annotations

import asyncio
import struct
import time
from datetime import UTC, datetime

import pytest

from models.plan import GroupPlan, RunPlan, SecretEnv
from runtimes.base import Runtime, Supervisor
from runtimes.errors import StartFailedError
from runtimes.local.containers import create_config, published_ports
from runtimes.local.logstream import demultiplex, parse_time
from runtimes.local.naming import ContainerKey
from runtimes.local.probes import Outcome, ProbeTracker
from runtimes.local.runtime import LocalRuntime
from runtimes.output import REASON_LINE_BYTES, REASON_LOG_CHARACTERS, last_lines
from tests.runtimes.local.conftest import container, probe

OK, BAD = Outcome(True, "fine"), Outcome(False, "broken")


def test_probe_waits_for_its_initial_delay_then_runs_every_period() -> None:
    tracker = ProbeTracker.start(
        "readiness", "main", probe(path="/", initialDelaySeconds=5, periodSeconds=3), now=100
    )
    assert not tracker.due(104.9) and tracker.due(105)
    tracker.record(OK, 105)
    assert not tracker.due(107.9) and tracker.due(108)


def test_probe_verdict_flips_only_at_its_thresholds() -> None:
    tracker = ProbeTracker.start(
        "readiness", "main", probe(path="/", successThreshold=2, failureThreshold=3), now=0
    )
    assert tracker.record(OK, 1) is None and tracker.passing is None
    assert tracker.record(OK, 2) is None and tracker.passing is True  # first verdict: no event
    assert tracker.record(BAD, 3) is None and tracker.record(BAD, 4) is None
    assert tracker.passing is True
    assert tracker.record(BAD, 5) == "failed" and tracker.passing is False
    assert tracker.record(OK, 6) is None and tracker.passing is False
    assert tracker.record(OK, 7) == "recovered" and tracker.passing is True


def test_probe_result_times_record_checks_and_changes() -> None:
    tracker = ProbeTracker.start("liveness", "main", probe(path="/"), now=0)
    tracker.record(BAD, 1)
    first = tracker.last
    time.sleep(0.002)  # distinct wall-clock times
    tracker.record(BAD, 2)
    second = tracker.last
    time.sleep(0.002)
    tracker.record(OK, 3)
    third = tracker.last
    assert first and second and third
    assert second.checked_at > first.checked_at and second.changed_at == first.changed_at
    assert third.ok and third.changed_at == third.checked_at > first.changed_at
    assert (
        "liveness probe of container 'main' failed"
        in ProbeTracker("liveness", "main", probe(path="/"), 0, last=second).describe
    )


def test_startup_probe_stops_once_it_passed() -> None:
    tracker = ProbeTracker.start("startup", "main", probe(path="/"), now=0)
    tracker.record(OK, 0)
    assert tracker.passing and not tracker.due(1000)


class _Chunks:
    """A stream that hands out bytes in awkward pieces, like a socket would."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def readexactly(self, n: int) -> bytes:
        if len(self._data) < n:
            raise asyncio.IncompleteReadError(self._data, n)
        head, self._data = self._data[:n], self._data[n:]
        return head


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


async def test_log_frames_are_split_into_lines_per_stream() -> None:
    data = (
        _frame(1, b"2026-01-02T03:04:05.123456789Z hel")
        + _frame(2, b"2026-01-02T03:04:05Z oops\n")
        + _frame(1, b"lo\n2026-01-02T03:04:06Z second\n")
        + _frame(1, b"2026-01-02T03:04:07Z no newline")
    )
    lines = [line async for line in demultiplex(_Chunks(data), max_line_bytes=1024)]
    assert [(line.stream, line.text) for line in lines] == [
        ("stderr", "oops"),
        ("stdout", "hello"),
        ("stdout", "second"),
        ("stdout", "no newline"),
    ]
    assert lines[1].timestamp == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


async def test_a_long_line_is_cut_without_being_held_whole() -> None:
    """A 3 MB line in frames of every size: cut at the limit, the excess counted."""
    line = b"2026-01-02T03:04:05Z " + b"x" * 3_000_000 + b"\n"
    data = b"".join(_frame(1, line[i : i + 70_000]) for i in range(0, len(line), 70_000))
    data += _frame(2, b"2026-01-02T03:04:06Z short\n")
    lines = [line async for line in demultiplex(_Chunks(data), max_line_bytes=200)]
    assert [(line.stream, len(line.text) < 300) for line in lines] == [
        ("stdout", True),
        ("stderr", True),
    ]
    assert lines[0].text.startswith("x" * 100) and lines[0].text.endswith("(2999821 more bytes)")
    assert lines[1].text == "short"


def test_a_reason_quotes_the_newest_log_lines_within_its_bound() -> None:
    """Five cut 3 MB lines (one per crash of a loop) do not make a reason of a kilobyte."""
    cut = "x" * REASON_LINE_BYTES + "... (2999821 more bytes)"
    quoted = last_lines(["older", *[cut] * 4, "newest"])
    assert len(quoted) <= REASON_LOG_CHARACTERS and quoted.endswith(f"{cut} | newest")
    assert "older" not in quoted
    assert last_lines(["", "one", "  ", "two"]) == "one | two"
    alone = last_lines(["y" * 5000])
    assert alone.startswith("y" * REASON_LOG_CHARACTERS) and len(alone) < 700


def test_engine_times() -> None:
    assert parse_time("2026-01-02T03:04:05+02:00") == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("yesterday") is None


def test_names_and_labels_round_trip() -> None:
    key = ContainerKey("abc123", 7, "default", 2, "main")
    assert key.name == "wapi-abc123-default-2-g7-main"
    assert ContainerKey.from_labels(key.labels()) == key
    assert ContainerKey.from_labels({"unrelated": "x"}) is None
    assert ContainerKey("a/b c", 1, "g", 0, "m").name == "wapi-a-b-c-g-0-g1-m"


def test_ports_published_for_the_primary_and_every_probe() -> None:
    main = container("img", port=8080, liveness_probe=probe(tcpSocket={"port": 9000}))
    side = container(
        "img", name="side", primary=False, port=None, readiness_probe=probe(path="/", port=9100)
    )
    group = GroupPlan(name="default", replicas=1, containers=[main, side])
    assert published_ports(group) == [8080, 9000, 9100]


def test_create_config_sets_limits_env_and_sidecar_network() -> None:
    main = container(
        "img",
        cpu=0.5,
        memory_bytes=64 * 2**20,
        env={"A": "1"},
        secret_env=[SecretEnv(name="TOKEN", secret_id="s")],
    )
    group = GroupPlan(name="default", replicas=1, containers=[main])
    key = ContainerKey("w", 1, "default", 0, "main")
    config = create_config(main, key, group, {"s": "v"}, primary_id=None, stop_grace_seconds=5)
    host = config["HostConfig"]
    assert config["Env"] == ["A=1", "TOKEN=v"]
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 64 * 2**20)
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"nofile": 1024, "nproc": 4096}
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert host["NetworkMode"] == "wapi-w"  # the workload's own network, not the host's
    assert host["MemorySwap"] == host["Memory"]  # no swap on top of the limit
    assert (host["CapDrop"], host["SecurityOpt"]) == (["ALL"], ["no-new-privileges"])
    assert (host["PidsLimit"], host["ReadonlyRootfs"]) == (1024, False)
    assert "Tmpfs" not in host

    sidecar = create_config(main, key, group, {"s": "v"}, primary_id="abc", stop_grace_seconds=5)
    assert sidecar["HostConfig"]["NetworkMode"] == "container:abc"
    assert sidecar["HostConfig"]["CapDrop"] == ["ALL"]
    assert "PortBindings" not in sidecar["HostConfig"]
    with pytest.raises(StartFailedError, match="TOKEN"):
        create_config(main, key, group, {}, primary_id=None, stop_grace_seconds=5)


async def test_local_runtime_implements_the_runtime_protocols() -> None:
    local = LocalRuntime("unix:///nonexistent/docker.sock")
    runtime: Runtime = local  # mypy checks the structural match
    group = GroupPlan(name="default", replicas=1, containers=[container("img")])
    supervisor: Supervisor = runtime.supervisor(
        RunPlan(workload_id="w", generation=1, groups=[group]), {}, []
    )
    assert runtime.name == "local"
    await supervisor.close()
    await runtime.close()
