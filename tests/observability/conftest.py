"""Fixtures for observability tests: captured JSON log lines, in-memory spans, metric reads."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.observability.logging import configure_logging
from superior_one.observability.tracing import setup_tracing, shutdown_tracing


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    """Every log line, rendered as in production (JSON), from the moment it is requested.

    Request it after the app fixture: the app factory configures logging again.
    """
    captured = CapturedLogs()
    configure_logging(level="INFO", json=True, stream=captured.stream)
    try:
        yield captured
    finally:
        configure_logging(level="INFO")


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, spans kept in memory."""
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(
        Settings(otel_sample_ratio=1.0), service_name="test", exporter=exporter, set_global=False
    )
    assert tracing is not None
    try:
        yield exporter
    finally:
        shutdown_tracing()


@pytest.fixture
async def traced_app(
    settings: Settings, span_exporter: InMemorySpanExporter
) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await application.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        yield application


@pytest.fixture
async def traced_client(traced_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=traced_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


MetricReader = Callable[..., float]


@pytest.fixture
def metric() -> MetricReader:
    """``metric("so_http_requests_total", route="/me")``: the sample's value, 0 if absent."""

    def read(name: str, **labels: str) -> float:
        value = REGISTRY.get_sample_value(name, labels)
        return 0.0 if value is None else value

    return read
