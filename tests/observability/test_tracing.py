"""Spans for requests, SQL, Redis and httpx; job links; off by default."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    get_current_span,
    set_span_in_context,
    use_span,
)
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.types import Receive, Scope, Send

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.observability.database import trace_statements
from superior_one.observability.sampling import RequestFirstSampler
from superior_one.observability.tracing import (
    DroppedChildTracer,
    ServerSpanMiddleware,
    current_tracing,
    inject_trace_context,
    job_span,
    setup_tracing,
)
from superior_one.resources import Resources
from tests.factories import auth_headers, create_organization, create_user


def _by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == kind]


@pytest.fixture
def local_http_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records the traceparent header of each request."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("traceparent", ""))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


async def _me(
    traced_client: httpx.AsyncClient, traced_app: FastAPI, settings: Settings
) -> httpx.Response:
    resources: Resources = traced_app.state.resources
    organization = await create_organization(resources.sessionmaker)
    user = await create_user(resources.sessionmaker, settings, organization)
    return await traced_client.get("/me", headers=auth_headers(settings, user))


class TestRequestSpans:
    async def test_tracing_request_has_server_span_named_by_route(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        await _me(traced_client, traced_app, settings)

        servers = _by_kind(span_exporter.get_finished_spans(), SpanKind.SERVER)
        assert [span.name for span in servers] == ["GET /me"]

    async def test_tracing_unhandled_error_marks_server_span(
        self, secret_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
    ) -> None:
        span_exporter.clear()
        response = await secret_client.post("/test/echo-fail", json={"a": 1})

        assert response.status_code == 500
        [server] = _by_kind(span_exporter.get_finished_spans(), SpanKind.SERVER)
        assert server.name == "POST /test/echo-fail"
        assert server.status.status_code == StatusCode.ERROR
        assert [event.name for event in server.events] == ["exception"]

    async def test_tracing_unmatched_path_span_keeps_method_name(
        self, traced_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
    ) -> None:
        span_exporter.clear()
        response = await traced_client.get("/no/such/route")

        assert response.status_code == 404
        [server] = _by_kind(span_exporter.get_finished_spans(), SpanKind.SERVER)
        assert server.name == "GET"

    async def test_tracing_sql_span_is_child_of_request(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        span_exporter.clear()
        await _me(traced_client, traced_app, settings)

        spans = span_exporter.get_finished_spans()
        server = _by_kind(spans, SpanKind.SERVER)[0]
        sql = [s for s in spans if s.attributes and "db.system" in str(dict(s.attributes))]
        request_sql = [s for s in sql if s.context.trace_id == server.context.trace_id]
        assert any(s.attributes and "postgresql" in str(dict(s.attributes)) for s in request_sql)

    async def test_tracing_redis_span_is_child_of_request(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        span_exporter.clear()
        await _me(traced_client, traced_app, settings)

        spans = span_exporter.get_finished_spans()
        server = _by_kind(spans, SpanKind.SERVER)[0]
        redis_spans = [
            s
            for s in spans
            if s.attributes
            and s.attributes.get("db.system", s.attributes.get("db.system.name")) == "redis"
        ]
        assert any(s.context.trace_id == server.context.trace_id for s in redis_spans)

    async def test_tracing_server_span_continues_caller_trace(
        self, traced_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
    ) -> None:
        span_exporter.clear()
        caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

        await traced_client.get(
            "/no/such/route",
            headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
        )

        [server] = _by_kind(span_exporter.get_finished_spans(), SpanKind.SERVER)
        assert format(server.context.trace_id, "032x") == caller_trace
        assert server.parent is not None
        assert format(server.parent.span_id, "016x") == caller_span

    async def test_tracing_server_span_has_request_and_status_attributes(
        self, traced_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
    ) -> None:
        span_exporter.clear()

        await traced_client.get("/me?secret=1", headers={"user-agent": "dispatch-app/2.1"})

        [server] = _by_kind(span_exporter.get_finished_spans(), SpanKind.SERVER)
        assert server.attributes is not None
        assert {
            key: server.attributes.get(key)
            for key in (
                "http.request.method",
                "http.route",
                "url.path",
                "http.response.status_code",
                "user_agent.original",
            )
        } == {
            "http.request.method": "GET",
            "http.route": "/me",
            "url.path": "/me",
            "http.response.status_code": 401,
            "user_agent.original": "dispatch-app/2.1",
        }
        assert "secret" not in str(dict(server.attributes))

    async def test_tracing_probe_routes_are_not_traced(
        self, traced_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
    ) -> None:
        span_exporter.clear()

        await traced_client.get("/health/live")
        await traced_client.get("/metrics")

        assert _by_kind(span_exporter.get_finished_spans(), SpanKind.SERVER) == []


class TestOutgoingHttp:
    async def test_tracing_httpx_call_has_client_span_and_propagates(
        self,
        span_exporter: InMemorySpanExporter,
        local_http_server: tuple[str, list[str]],
    ) -> None:
        url, seen = local_http_server
        tracing = current_tracing()
        assert tracing is not None

        with tracing.tracer.start_as_current_span("caller") as caller:
            async with httpx.AsyncClient() as http:
                await http.get(url)

        client_spans = _by_kind(span_exporter.get_finished_spans(), SpanKind.CLIENT)
        assert [s.context.trace_id for s in client_spans] == [caller.get_span_context().trace_id]
        assert seen[0].split("-")[1] == format(caller.get_span_context().trace_id, "032x")


class TestDroppedChildTracer:
    DROPPED = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False))

    @pytest.fixture
    def tracer(self, span_exporter: InMemorySpanExporter) -> DroppedChildTracer:
        tracing = current_tracing()
        assert tracing is not None
        return DroppedChildTracer(tracing.tracer)

    def test_child_of_dropped_span_is_parent(
        self, tracer: DroppedChildTracer, span_exporter: InMemorySpanExporter
    ) -> None:
        with use_span(self.DROPPED):
            started = tracer.start_span("child")
            with tracer.start_as_current_span("current child") as current:
                inner = get_current_span()

        assert started is self.DROPPED
        assert current is self.DROPPED
        assert inner is self.DROPPED
        assert span_exporter.get_finished_spans() == ()

    def test_child_of_recorded_span_is_recorded(
        self, tracer: DroppedChildTracer, span_exporter: InMemorySpanExporter
    ) -> None:
        with (
            tracer.start_as_current_span("parent") as parent,
            tracer.start_as_current_span("child"),
        ):
            pass

        [child] = [s for s in span_exporter.get_finished_spans() if s.name == "child"]
        assert child.parent is not None
        assert child.parent.span_id == parent.get_span_context().span_id

    def test_explicit_context_is_honoured(
        self, tracer: DroppedChildTracer, span_exporter: InMemorySpanExporter
    ) -> None:
        with tracer.start_as_current_span("parent") as parent:
            parent_context = set_span_in_context(parent)
        with use_span(self.DROPPED):
            tracer.start_span("child", parent_context).end()

        [child] = [s for s in span_exporter.get_finished_spans() if s.name == "child"]
        assert child.context.trace_id == parent.get_span_context().trace_id

    async def test_http_call_under_dropped_span_propagates_it(
        self,
        span_exporter: InMemorySpanExporter,
        local_http_server: tuple[str, list[str]],
    ) -> None:
        url, seen = local_http_server

        with use_span(self.DROPPED):
            async with httpx.AsyncClient() as http:
                await http.get(url)

        assert _by_kind(span_exporter.get_finished_spans(), SpanKind.CLIENT) == []
        assert seen == [f"00-{0xABC:032x}-{0xDEF:016x}-00"]


class TestJobLinks:
    def test_tracing_job_span_links_to_deferring_span(
        self, span_exporter: InMemorySpanExporter
    ) -> None:
        tracing = current_tracing()
        assert tracing is not None
        with tracing.tracer.start_as_current_span("request") as request_span:
            carrier = inject_trace_context()

        with job_span("carriers.reverify", carrier, job_id=7, queue="carriers"):
            pass

        job = next(
            s for s in span_exporter.get_finished_spans() if s.name == "job carriers.reverify"
        )
        assert [link.context.span_id for link in job.links] == [
            request_span.get_span_context().span_id
        ]

    def test_tracing_job_span_starts_its_own_trace(
        self, span_exporter: InMemorySpanExporter
    ) -> None:
        tracing = current_tracing()
        assert tracing is not None
        with tracing.tracer.start_as_current_span("request") as request_span:
            carrier = inject_trace_context()

        with job_span("carriers.reverify", carrier) as job:
            pass

        assert job.get_span_context().trace_id != request_span.get_span_context().trace_id

    # NOTE: the end-to-end check (a request defers a real job and the worker's span
    # links to it) belongs with the jobs package once it calls these helpers.


class TestOffByDefault:
    def test_tracing_off_without_setting(self) -> None:
        assert setup_tracing(Settings(), service_name="test") is None

    def test_tracing_off_injects_nothing(self) -> None:
        assert inject_trace_context() == {}

    def test_tracing_off_adds_no_middleware(self, settings: Settings) -> None:
        application = create_app(settings)

        names = [m.cls.__name__ for m in application.user_middleware]  # type: ignore[attr-defined]
        assert "OpenTelemetryMiddleware" not in names


def _sampling_provider(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(RequestFirstSampler(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def _request_trace_ids(
    provider: TracerProvider, ratio: float, count: int, headers: dict[str, str] | None = None
) -> list[str]:
    """Send ``count`` requests through ServerSpanMiddleware; return each one's trace id."""
    seen: list[str] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(format(get_current_span().get_span_context().trace_id, "032x"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = ServerSpanMiddleware(
        endpoint, provider.get_tracer("test"), ratio, provider.id_generator
    )
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        for _ in range(count):
            await http.get("/loads", headers=headers)
    return seen


class TestSampling:
    @pytest.mark.parametrize("ratio", [0.0, 1.0])
    async def test_sampling_ratio_bounds_record_none_or_all(self, ratio: float) -> None:
        provider, exporter = _sampling_provider(ratio)

        trace_ids = await _request_trace_ids(provider, ratio, 20)

        assert len(exporter.get_finished_spans()) == 20 * ratio
        assert len(set(trace_ids)) == 20
        assert "0" * 32 not in trace_ids

    async def test_sampling_ratio_records_its_share(self) -> None:
        # Binomial(600, 0.25): 150 expected, 3.9 standard deviations either side.
        provider, exporter = _sampling_provider(0.25)

        await _request_trace_ids(provider, 0.25, 600)

        assert 100 <= len(exporter.get_finished_spans()) <= 200

    async def test_sampling_caller_decision_kept_when_ratio_zero(self) -> None:
        provider, exporter = _sampling_provider(0.0)
        caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"

        trace_ids = await _request_trace_ids(
            provider, 0.0, 1, headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}
        )

        assert trace_ids == [caller_trace]
        assert len(exporter.get_finished_spans()) == 1

    def test_sampling_other_roots_use_trace_id_ratio(self) -> None:
        provider, exporter = _sampling_provider(0.0)

        with provider.get_tracer("test").start_as_current_span("job settle_attempt"):
            pass

        assert exporter.get_finished_spans() == ()


class TestStatementSpans:
    @pytest.fixture
    async def engine(
        self, settings: Settings, span_exporter: InMemorySpanExporter
    ) -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(settings.database_url)
        tracing = current_tracing()
        assert tracing is not None
        trace_statements(engine, tracing.tracer)
        try:
            yield engine
        finally:
            await engine.dispose()

    @staticmethod
    def _statement_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
        return _by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)

    async def test_statement_span_is_child_with_attributes(
        self, engine: AsyncEngine, span_exporter: InMemorySpanExporter
    ) -> None:
        tracing = current_tracing()
        assert tracing is not None
        with tracing.tracer.start_as_current_span("request") as request_span:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 'secret-literal-41' AS value"))

        [span] = self._statement_spans(span_exporter)
        assert span.parent is not None
        assert span.parent.span_id == request_span.get_span_context().span_id
        assert span.name == f"SELECT {engine.url.database}"
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == "postgresql"
        assert span.attributes["db.namespace"] == engine.url.database
        assert span.attributes["db.operation.name"] == "SELECT"
        assert span.attributes["db.query.text"] == "SELECT ? AS value"

    async def test_statement_under_dropped_request_has_no_span(
        self, engine: AsyncEngine, span_exporter: InMemorySpanExporter
    ) -> None:
        dropped = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False))

        with use_span(dropped):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        assert self._statement_spans(span_exporter) == []

    async def test_statement_without_parent_starts_trace(
        self, engine: AsyncEngine, span_exporter: InMemorySpanExporter
    ) -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

        [span] = self._statement_spans(span_exporter)
        assert span.parent is None

    async def test_failed_statement_span_marks_error(
        self, engine: AsyncEngine, span_exporter: InMemorySpanExporter
    ) -> None:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError):
                await conn.execute(text("SELECT 1 / 0"))

        [span] = self._statement_spans(span_exporter)
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "DivisionByZero"
