"""One connected trace, exported over OTLP/HTTP to a loopback collector: the API request that
creates a workload, the Temporal client call, the workflow, its activities and the container
engine calls that start the container; and an invoke through the gateway that continues the
caller's trace and hands the workload its own `traceparent`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack, open_stack
from tests.e2e.test_workload_lifecycle import READY
from tests.support.otlp_collector import Collector, ReceivedSpan, otlp_collector

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[str]:
    """Names from `span` up to its trace's root, following parent ids."""
    by_id = {s.span_id: s for s in spans}
    names = [span.name]
    while span.parent_id and span.parent_id in by_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


def trace_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # set by the stack's `tracing.configure`
    return provider


async def flushed(collector: Collector, done: Callable[[], bool], within: float = 60) -> None:
    provider = trace_provider()
    deadline = asyncio.get_running_loop().time() + within
    while True:
        # Blocking (it waits for the export): off the loop that serves the collector.
        await asyncio.to_thread(provider.force_flush)
        if done():
            return
        if asyncio.get_running_loop().time() > deadline:
            names = sorted({s.name for s in collector.spans})
            raise AssertionError(f"the trace is incomplete after {within} s; spans: {names}")
        await asyncio.sleep(0.5)


async def test_one_trace_from_the_api_to_the_container_and_through_the_gateway(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
    task_queue: str,
) -> None:
    # As `temporal.connect` builds it when WAPI_OTLP_ENDPOINT is set; the worker inherits it.
    config = temporal_env.client.config()
    config["interceptors"] = [TracingInterceptor()]
    traced = Client(**config)
    async with otlp_collector() as collector:
        async with open_stack(
            tmp_path, traced, docker_url, test_image, task_queue, otlp_endpoint=collector.url
        ) as stack:
            await create_and_invoke(stack, collector)
        # The stack's last spans (its teardown) go out while the collector still listens;
        # then the process's provider stops exporting, so no later test's span is retried
        # against a collector that is gone (a process sets its provider once).
        await asyncio.to_thread(trace_provider().force_flush)
    trace_provider().shutdown()


async def create_and_invoke(stack: Stack, collector: Collector) -> None:
    workload = (await stack.create(name="traced", readinessProbe=READY))["id"]
    await stack.wait_status(workload, "running")

    def started_container() -> list[ReceivedSpan]:
        return [
            s
            for s in collector.named("container engine: start")
            if "POST /api/v2/console/workloads/" in ancestors(s, collector.spans)[-1]
        ]

    await flushed(collector, lambda: bool(started_container()))
    start = started_container()[0]
    chain = ancestors(start, collector.trace(start.trace_id))
    # From the container start up to the request, every link in one trace.
    assert chain[0] == "container engine: start"
    assert chain[1:4] == [
        "RunActivity:supervise",
        "StartActivity:supervise",  # scheduled by the workflow
        "StartWorkflow:WorkloadWorkflow",  # the API's Temporal client
    ]
    assert chain[-1].startswith("POST /api/v2/console/workloads/")
    whole = {s.name for s in collector.trace(start.trace_id)}
    assert {
        "RunWorkflow:WorkloadWorkflow",
        "RunActivity:begin_generation",  # `initializing` and the plan
        "container engine: create",
    } <= whole

    caller = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    answer = await stack.invoke.get(
        f"/api/v2/endpoints/workloads/{workload}/cgi-bin/env",
        headers={"traceparent": caller},
    )
    assert answer.status_code == 200, answer.text
    seen = re.search(r"^HTTP_TRACEPARENT=(\S+)$", answer.text, re.MULTILINE)
    assert seen is not None, answer.text
    _, trace_id, parent, _ = seen.group(1).split("-")

    def invoke_span() -> list[ReceivedSpan]:
        return [s for s in collector.named("invoke workload") if s.trace_id == CALLER_TRACE]

    await flushed(collector, lambda: bool(invoke_span()))
    span = invoke_span()[0]
    assert span.parent_id == CALLER_SPAN  # the caller's trace continues in the gateway
    assert (trace_id, parent) == (CALLER_TRACE, span.span_id)  # and on to the workload
    assert span.attributes["http.response.status_code"] == "200"
    # No credential and no invoke path reaches a span.
    recorded = repr([(s.name, s.attributes) for s in collector.spans])
    assert ADMIN_KEY not in recorded and "cgi-bin" not in recorded
