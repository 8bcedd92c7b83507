"""OpenTelemetry traces: FastAPI, SQLAlchemy, httpx and Redis spans, and job links.

Off by default (``SO_OTEL_ENABLED=false``): nothing is instrumented and every
helper here returns at its first line, so tracing costs nothing. When on, each
process calls :func:`setup_tracing` once at start-up; the api's factory, the
worker and the gps-consumer do. Spans go to the OTLP/HTTP endpoint from
settings, sampled by ``SO_OTEL_SAMPLE_RATIO`` (parent-based: a request whose
caller sampled it stays sampled). Without an endpoint, spans are still created,
so trace ids reach the logs and outgoing requests, but they are not exported.

A job carries its deferring request's trace context in its payload
(:func:`inject_trace_context` when deferring, :func:`job_span` when running); the
job's span links to the request's span rather than being its child, because it
runs later and possibly many times.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from superior_one.config import Settings

if TYPE_CHECKING:
    # Only for annotations: the logging setup imports this module in every process,
    # and the SDK, FastAPI and the clients load only when tracing is on.
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

TRACER_NAME = "superior_one"
# Paths polled by probes and Prometheus: spans for them would be pure noise.
EXCLUDED_PATHS = frozenset({"/metrics", "/health/live", "/health/ready"})
JOB_TRACE_KEY = "_trace"

_propagator = TraceContextTextMapPropagator()
# True while ServerSpanMiddleware starts a request span it already chose to record;
# the provider's root sampler (observability/sampling.py) reads it.
request_trace_chosen: ContextVar[bool] = ContextVar("so_request_trace_chosen", default=False)


@dataclass
class Tracing:
    """The process's tracer provider and what it instrumented."""

    provider: TracerProvider
    sample_ratio: float
    _traced_engines: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)

    @property
    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer(TRACER_NAME)

    def instrument_app(self, app: FastAPI) -> None:
        """Add :class:`ServerSpanMiddleware` as the outermost middleware."""
        app.add_middleware(
            ServerSpanMiddleware,
            tracer=self.tracer,
            sample_ratio=self.sample_ratio,
            id_generator=self.provider.id_generator,
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        from superior_one.observability.database import trace_statements

        if engine.sync_engine not in self._traced_engines:
            self._traced_engines.add(engine.sync_engine)
            trace_statements(engine, self.tracer)

    def instrument_redis(self, client: Redis) -> None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor.instrument_client(
            client, tracer_provider=DroppedChildTracerProvider(self.provider)
        )

    def force_flush(self) -> None:
        self.provider.force_flush(timeout_millis=5000)


_current: Tracing | None = None


# The ASGI scope key under which ServerSpanMiddleware leaves the request's span.
SERVER_SPAN_SCOPE_KEY = "superior_one.server_span"
_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServerSpanMiddleware:
    """One SERVER span per HTTP request, current while the request runs.

    Not OpenTelemetry's ASGI middleware: it builds a dozen attributes from the
    headers for every request, sampled or not, and ``FastAPIInstrumentor`` also
    matches the path against every route a second time. Here a request without
    a caller is sampled first. A dropped request gets only two random ids, where
    the SDK's start_span took about 12 us (timeit) for the same result.
    Attributes are set only on recorded spans. The span starts before routing,
    named after the method;
    :class:`superior_one.middleware.RequestContextMiddleware` renames it after
    the route template and records unhandled errors on it.
    """

    def __init__(
        self, app: ASGIApp, tracer: trace.Tracer, sample_ratio: float, id_generator: IdGenerator
    ) -> None:
        self.app = app
        self.tracer = tracer
        self.sample_ratio = sample_ratio
        self.ids = id_generator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXCLUDED_PATHS:
            await self.app(scope, receive, send)
            return
        caller = _caller_context(scope["headers"])
        if caller is None and random.random() >= self.sample_ratio:  # noqa: S311 - not a secret
            # Dropped: the ids the SDK would give, without its span machinery.
            # Positional arguments: the keyword form cost a third more instructions (callgrind).
            span: trace.Span = trace.NonRecordingSpan(
                trace.SpanContext(
                    self.ids.generate_trace_id(), self.ids.generate_span_id(), False, _NOT_SAMPLED
                )
            )
        else:
            span = self._start_span(scope, caller)
        recording = span.is_recording()
        # RequestContextMiddleware names the span after the route and records errors on it.
        scope[SERVER_SPAN_SCOPE_KEY] = span

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_with_status if recording else send)
        except Exception as exc:
            # Reached only after the response started: earlier errors become a 500 inside.
            if recording:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()
            otel_context.detach(token)

    def _start_span(self, scope: Scope, caller: otel_context.Context | None) -> trace.Span:
        # Without a caller the middleware chose to record; the provider's
        # RequestFirstSampler reads the choice instead of drawing again.
        chosen = request_trace_chosen.set(caller is None)
        method = scope["method"]
        try:
            return self.tracer.start_span(
                method if method in _HTTP_METHODS else "HTTP",
                context=caller,
                kind=SpanKind.SERVER,
                attributes=_request_attributes(scope),
            )
        finally:
            request_trace_chosen.reset(chosen)


def dropped_current_span() -> trace.Span | None:
    """Return the current span when it belongs to a trace the sampler dropped, else None."""
    span = trace.get_current_span()
    context = span.get_span_context()
    if context.is_valid and not context.trace_flags.sampled and not span.is_recording():
        return span
    return None


class DroppedChildTracer(trace.Tracer):
    """A tracer that returns the current span itself when that span was dropped.

    The provider's parent-based sampler never records a child of a dropped span.
    The SDK still runs the sampler, draws a span id, builds a span and attaches a
    context for it, for every Redis command and outgoing HTTP call: about 57,000
    instructions per Redis GET (callgrind). Here such a child costs one look at the
    current span. Its log lines carry the dropped
    parent's span id.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kwargs: Any
    ) -> trace.Span:
        if context is None and (dropped := dropped_current_span()) is not None:
            return dropped
        return self._tracer.start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if context is None and (dropped := dropped_current_span()) is not None:
            yield dropped  # already current
            return
        with self._tracer.start_as_current_span(name, context, *args, **kwargs) as span:
            yield span


class DroppedChildTracerProvider(trace.TracerProvider):
    """A tracer provider whose tracers are :class:`DroppedChildTracer`, for instrumentations."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._provider = provider

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return DroppedChildTracer(
            self._provider.get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        )


def _caller_context(headers: list[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """Return the caller's trace context when it sent one (W3C ``traceparent``), else None."""
    for name, _value in headers:
        if name == b"traceparent":
            carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in headers}
            return propagate.extract(carrier)
    return None


def _request_attributes(scope: Scope) -> dict[str, Any]:
    # OpenTelemetry's stable HTTP semantic conventions; no query string, which
    # may carry a filter value the caller considers private.
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    for name, value in scope["headers"]:
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
            break
    return attributes


def current_tracing() -> Tracing | None:
    """Return the process's tracing, or None when tracing is off."""
    return _current


def setup_tracing(
    settings: Settings,
    *,
    service_name: str,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> Tracing | None:
    """Create the process's tracer provider once; later calls return the same one.

    ``exporter`` replaces the OTLP exporter (tests pass an in-memory one, which
    also turns tracing on). ``set_global`` makes the provider OpenTelemetry's
    global one, for libraries that look it up there. Either exporter receives
    spans scrubbed by :class:`.span_redaction.ScrubbingSpanExporter`.
    """
    global _current
    if _current is not None:
        return _current
    if not settings.otel_enabled and exporter is None:
        return None
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    from superior_one.observability.sampling import RequestFirstSampler
    from superior_one.observability.span_redaction import ScrubbingSpanExporter

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service_name, "deployment.environment": settings.environment}
        ),
        sampler=ParentBased(RequestFirstSampler(settings.otel_sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(exporter)))
    elif settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(ScrubbingSpanExporter(otlp)))

    HTTPXClientInstrumentor().instrument(
        tracer_provider=DroppedChildTracerProvider(provider), meter_provider=NoOpMeterProvider()
    )
    if set_global:
        trace.set_tracer_provider(provider)
    _current = Tracing(provider, settings.otel_sample_ratio)
    log.info(
        "tracing.started",
        service=service_name,
        exporter="custom" if exporter is not None else settings.otel_exporter_otlp_endpoint,
        sample_ratio=settings.otel_sample_ratio,
    )
    return _current


def shutdown_tracing() -> None:
    """Flush and stop the process's tracing and undo the global httpx instrumentation."""
    global _current
    tracing, _current = _current, None
    if tracing is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    tracing.provider.shutdown()


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current trace and span ids on every line."""
    if _current is None:
        return event_dict  # tracing off: no span can be current
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        # The same text as format(id, "032x"), in about half the instructions.
        event_dict["trace_id"] = context.trace_id.to_bytes(16).hex()
        event_dict["span_id"] = context.span_id.to_bytes(8).hex()
    return event_dict


def inject_trace_context() -> dict[str, str]:
    """Return the current span's W3C trace context, to store in a job's payload.

    Empty when tracing is off or no span is active.
    """
    if _current is None:
        return {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


@contextmanager
def job_span(
    task_name: str,
    carrier: object,
    *,
    job_id: int | None = None,
    queue: str | None = None,
    attempt: int | None = None,
) -> Iterator[trace.Span]:
    """Run a job inside its own root span, linked to the span that deferred it.

    The span is current for the block, so the job's log lines carry its trace id
    and its database and HTTP calls become its children. ``carrier`` is what
    :func:`inject_trace_context` returned, read back from the job's arguments;
    anything else (None, a malformed value) starts the span without a link.
    """
    if _current is None:
        yield trace.INVALID_SPAN
        return
    links: list[Link] = []
    if isinstance(carrier, Mapping) and carrier:
        headers = {str(name): str(value) for name, value in carrier.items()}
        deferring = trace.get_current_span(_propagator.extract(headers)).get_span_context()
        if deferring.is_valid:
            links.append(Link(deferring, {"link.reason": "deferred_by"}))
    attributes: dict[str, Any] = {"job.task": task_name}
    if job_id is not None:
        attributes["job.id"] = job_id
    if queue is not None:
        attributes["job.queue"] = queue
    if attempt is not None:
        attributes["job.attempt"] = attempt
    with _current.tracer.start_as_current_span(
        f"job {task_name}",
        context=otel_context.Context(),  # a new trace: the job is not part of the request's
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    ) as span:
        yield span
