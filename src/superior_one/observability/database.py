"""SQLAlchemy instrumentation: pool gauges and wait time, query durations, slow queries.

:func:`superior_one.db.create_engine` builds every engine with
:class:`InstrumentedPool` and calls :func:`instrument_engine` on it, so each
process's one engine reports without further wiring.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
import weakref
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection

from superior_one.observability import metrics
from superior_one.observability.tracing import dropped_current_span

log = structlog.get_logger("superior_one.db")

_OPERATIONS = frozenset(
    {"select", "insert", "update", "delete", "with", "copy", "call", "set", "show", "lock"}
)
_STARTS_KEY = "so_query_started"
_INSTRUMENTED: weakref.WeakSet[Engine] = weakref.WeakSet()
MAX_FINGERPRINT_CHARS = 2000
# The engine whose pool the gauges report: the process's newest instrumented one.
_sampled_engine: weakref.ReferenceType[Engine] | None = None


class InstrumentedPool(AsyncAdaptedQueuePool):
    """The async engine's default pool, timing how long a connection takes to obtain."""

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        try:
            return super().connect()
        except PoolTimeoutError:
            metrics.DB_POOL_TIMEOUTS.inc()
            raise
        finally:
            metrics.DB_POOL_WAIT_TALLY.observe((), time.perf_counter() - started)


# SQLAlchemy names a pool's logger after its class's module, which puts this one
# outside the "sqlalchemy" logger and its WARNING default; keep it as quiet.
logging.getLogger(f"{__name__}.{InstrumentedPool.__name__}").setLevel(logging.WARNING)


def instrument_engine(engine: AsyncEngine, *, slow_query_ms: float) -> None:
    """Attach pool and statement listeners to ``engine`` (idempotent per engine)."""
    sync_engine = engine.sync_engine
    if sync_engine in _INSTRUMENTED:
        return
    _INSTRUMENTED.add(sync_engine)
    slow_query_s = slow_query_ms / 1000 if slow_query_ms > 0 else None

    def before_cursor_execute(conn: Connection, *_args: Any) -> None:
        conn.info.setdefault(_STARTS_KEY, []).append(time.perf_counter())

    def after_cursor_execute(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        starts: list[float] = conn.info.get(_STARTS_KEY) or []
        if not starts:
            return
        elapsed = time.perf_counter() - starts.pop()
        operation = statement_operation(statement)
        metrics.DB_QUERY_DURATION_TALLY.observe((operation,), elapsed)
        if slow_query_s is not None and elapsed >= slow_query_s:
            metrics.DB_SLOW_QUERIES.labels(operation).inc()
            normalized = normalize_sql(statement)
            log.warning(
                "db.slow_query",
                operation=operation,
                duration_ms=round(elapsed * 1000, 2),
                fingerprint=fingerprint_id(normalized),
                statement=normalized,
            )

    def handle_error(context: ExceptionContext) -> None:
        conn = context.connection
        if conn is not None:
            starts: list[float] = conn.info.get(_STARTS_KEY) or []
            if starts:
                starts.pop()
        metrics.DB_ERRORS.labels(db_error_kind(context.original_exception)).inc()

    event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    event.listen(sync_engine, "after_cursor_execute", after_cursor_execute)
    event.listen(sync_engine, "handle_error", handle_error)
    # One engine per process: the newest one's pool is the one reported.
    global _sampled_engine
    _sampled_engine = weakref.ref(sync_engine)
    _sample_pool()


def _sample_pool() -> None:
    """Set the pool gauges from the sampled engine's pool (run at each metrics flush)."""
    engine = _sampled_engine() if _sampled_engine is not None else None
    if engine is None:
        return
    pool = engine.pool
    if isinstance(pool, AsyncAdaptedQueuePool):
        metrics.DB_POOL_SIZE.set(pool.size())
        metrics.DB_POOL_CHECKED_OUT.set(pool.checkedout())
        metrics.DB_POOL_OVERFLOW.set(max(0, pool.overflow()))


# The pool gauges are read once a second (at each metrics flush) rather than
# written on every checkout and checkin: six locked writes per request.
metrics.register_sampler(_sample_pool)


def trace_statements(engine: AsyncEngine, tracer: trace.Tracer) -> None:
    """Record a CLIENT span for each statement ``engine`` runs.

    In place of OpenTelemetry's SQLAlchemy instrumentation, which parsed the URL,
    built the span name and asked the SDK for a span on every statement, recorded
    or not: about 240,000 instructions per statement under a request that tracing
    dropped (``bench.observability_instructions --path /me``). Here such a
    statement costs one look at the current span. ``db.query.text`` is the
    normalized statement, so a literal written into ``text()`` never reaches a span.
    """
    url = engine.sync_engine.url
    database = url.database or "postgresql"
    common: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.namespace": url.database or "",
        "server.address": url.host or "localhost",
        "server.port": url.port or 5432,
    }

    def before_cursor_execute(
        _conn: Connection, _cursor: Any, statement: str, _parameters: Any, context: Any, *_args: Any
    ) -> None:
        if context is None or dropped_current_span() is not None:
            return  # the parent-based sampler drops every child of a dropped span
        operation = statement_operation(statement).upper()
        attributes = {
            **common,
            "db.operation.name": operation,
            "db.query.text": normalize_sql(statement),
        }
        name = database if operation == "OTHER" else f"{operation} {database}"
        context.so_span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def after_cursor_execute(
        _conn: Connection,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        context: Any,
        *_args: Any,
    ) -> None:
        span: trace.Span | None = getattr(context, "so_span", None)
        if span is not None:
            context.so_span = None
            span.end()

    def handle_error(exception_context: ExceptionContext) -> None:
        context = exception_context.execution_context
        span: trace.Span | None = getattr(context, "so_span", None)
        if span is None:
            return
        context.so_span = None  # type: ignore[union-attr]
        error = exception_context.original_exception
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    sync_engine = engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    event.listen(sync_engine, "after_cursor_execute", after_cursor_execute)
    event.listen(sync_engine, "handle_error", handle_error)


def statement_operation(statement: str) -> str:
    """First keyword of a statement when it is a known one, else ``"other"``."""
    head = statement.lstrip()[:8].split(None, 1)
    word = head[0].lower() if head else ""
    return word if word in _OPERATIONS else "other"


def db_error_kind(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate == "57014":  # query_canceled: statement_timeout
        return "timeout"
    if sqlstate.startswith("23"):
        return "integrity"
    if sqlstate.startswith("08") or type(exc).__name__ in {"OperationalError", "InterfaceError"}:
        return "connection"
    return "other"


# Literal values, in the order they are replaced. Statements built by SQLAlchemy
# carry placeholders rather than values; these catch literals written into text().
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
_PLACEHOLDERS = re.compile(r"%\(\w+\)s|%s|\$\d+|(?<!:):\w+\b|\?")
_DOLLAR_QUOTED = re.compile(r"\$(\w*)\$.*?\$\1\$", re.DOTALL)
_STRINGS = re.compile(r"[EeBbXxNn]?'(?:[^']|'')*'")
_NUMBERS = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_VALUE_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))*")
_SPACES = re.compile(r"\s+")


# SQLAlchemy sends the same statement texts again and again, so the
# regular expressions below run once per text rather than once per span.
@functools.lru_cache(maxsize=1024)
def normalize_sql(statement: str) -> str:
    """Return the statement's shape: every literal and placeholder becomes ``?``, value lists
    collapse to ``(...)``, comments and repeated whitespace go.

    ``where id in (%(id_1_1)s, %(id_1_2)s)`` and ``where id in (4, 5, 6)`` both
    normalize to ``where id in (...)``, so they share one fingerprint.
    """
    text = _COMMENTS.sub(" ", statement)
    text = _DOLLAR_QUOTED.sub("?", text)
    text = _STRINGS.sub("?", text)
    text = _PLACEHOLDERS.sub("?", text)
    text = _NUMBERS.sub("?", text)
    text = _VALUE_LISTS.sub("(...)", text)
    text = _SPACES.sub(" ", text).strip()
    return text[:MAX_FINGERPRINT_CHARS]


def fingerprint_id(normalized: str) -> str:
    """Return a short stable id of a normalized statement, to group slow-query lines."""
    return hashlib.blake2b(normalized.encode(), digest_size=8).hexdigest()
