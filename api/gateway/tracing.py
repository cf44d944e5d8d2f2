"""Invoke calls as spans, when tracing is configured (services/tracing.py).

The span continues the caller's W3C `traceparent` (if any), and the workload receives the
gateway's own `traceparent`/`tracestate`, so its spans are children of the invoke. Without
tracing the gateway does nothing here and forwards the caller's headers as they are.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from api.gateway.headers import Headers3

TRACE_HEADERS: Final = frozenset({b"traceparent", b"tracestate"})
_PROPAGATOR: Final = TraceContextTextMapPropagator()


class InvokeTracing:
    def __init__(self) -> None:
        self.tracer = trace.get_tracer("wapi.gateway")

    def begin(self, kind: str, target_id: str, method: bytes, headers: Headers3) -> Span:
        carrier = {
            lname.decode("latin-1"): value.decode("latin-1")
            for _, value, lname in headers
            if lname in TRACE_HEADERS
        }
        return self.tracer.start_span(
            f"invoke {kind}",
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method.decode("latin-1"),
                f"wapi.{kind}.id": target_id,
            },
        )

    @staticmethod
    def header_lines(span: Span) -> bytes:
        """The `traceparent` (and `tracestate`) lines that make the workload's spans children
        of `span`."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in carrier.items())

    @staticmethod
    def end(span: Span, status: int) -> None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()


def without_trace_headers(headers: Headers3) -> Headers3:
    return [header for header in headers if header[2] not in TRACE_HEADERS]
