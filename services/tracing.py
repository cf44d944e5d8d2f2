"""OpenTelemetry traces, off unless `WAPI_OTLP_ENDPOINT` names an OTLP/HTTP collector.

One trace follows a change from the API request (FastAPI instrumentation) through the Temporal
client (Temporal's `TracingInterceptor`, which carries the context in workflow and activity
headers) into the workflow, its activities and their container engine calls; the invoke
gateway continues the caller's `traceparent` and forwards its own to the workload. With no
endpoint nothing is instrumented and the OpenTelemetry API stays a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

from config.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

# The SDK, the exporter and the instrumentations are imported only when tracing is on: they
# cost a third of a second at start-up, in every process.


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def configure(settings: Settings, service: str) -> TracerProvider | None:
    """Export this process's spans to the configured collector; once per process (the first
    service name wins), and nothing at all without an endpoint."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def temporal_interceptors(settings: Settings) -> list[Interceptor]:
    """For the Temporal client, and so for every worker built on it."""
    if not settings.otlp_endpoint:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
