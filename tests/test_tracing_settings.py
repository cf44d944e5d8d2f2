"""Tracing is off unless an OTLP endpoint is configured (the live trace: e2e/test_tracing.py)."""

from __future__ import annotations

from config.settings import Settings
from services import tracing


def test_off_without_an_endpoint() -> None:
    settings = Settings(otlp_endpoint=None)
    assert tracing.configure(settings, "wapi-test") is None
    assert tracing.temporal_interceptors(settings) == []


def test_the_traces_url_of_a_collector() -> None:
    assert tracing.traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert tracing.traces_url("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"
