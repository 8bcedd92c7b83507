"""Prometheus metrics of every process: the families, their helpers and the exposition.

Multiprocess model (the reasons are in docs/operations.md):

* the api runs several worker processes behind one port, so it runs in
  prometheus-client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set in
  the api's environment (a fresh, empty directory per start), every process
  writes its samples to memory-mapped files there, and ``/metrics`` on any of
  them aggregates the directory;
* a worker or gps-consumer is one process with one registry, served on its own
  port by :func:`start_metrics_server` and scraped as a target of its own.

Label values are bounded by the code: route templates, status classes, task
and queue names, command names, reasons from fixed vocabularies. No load,
user or organization id is ever a label value.

Domains record events through the module's metric objects (``LOADS_POSTED.inc()``)
or the small helpers below where a value needs shaping first.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from superior_one.observability.multiprocess import MULTIPROC_ENV

log = structlog.get_logger(__name__)

EXPOSITION_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

ErrorClass = Literal["client", "server", "dependency"]
CircuitState = Literal["closed", "half_open", "open"]

# Seconds. The latency objectives run from 50 ms (GPS ping) to 1 s (charge), so the
# buckets are dense there and include each objective's threshold.
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0,
    10.0,
)  # fmt: skip
FAST_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
)  # fmt: skip
JOB_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Posting to coverage takes minutes to days.
COVER_BUCKETS: Final = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 604800.0,
)  # fmt: skip

# --- HTTP ----------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "so_http_requests",
    "HTTP requests answered, by route template and status class.",
    ["method", "route", "status_class"],
)
HTTP_REQUEST_DURATION = Histogram(
    "so_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template.",
    ["method", "route", "status_class"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter(
    "so_errors",
    "Errors returned to clients or raised in jobs, by source (http, job), class (client, "
    "server, dependency) and problem code.",
    ["source", "error_class", "code"],
)

# --- database ------------------------------------------------------------------------------

# Pool gauges are per process; in multiprocess mode the api's processes add up.
DB_POOL_SIZE = Gauge(
    "so_db_pool_size",
    "Connections the pool keeps (configured size).",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "so_db_pool_checked_out",
    "Connections currently lent out by the pool.",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "so_db_pool_overflow",
    "Connections open beyond the pool's size (bounded by max_overflow).",
    multiprocess_mode="livesum",
)
DB_POOL_WAIT = Histogram(
    "so_db_pool_wait_seconds",
    "Time to obtain a connection from the pool: waiting for a free one, opening a new one "
    "and the pre-ping.",
    buckets=FAST_BUCKETS,
)
DB_POOL_TIMEOUTS = Counter(
    "so_db_pool_timeouts",
    "Connection requests that gave up because the pool stayed exhausted.",
)
DB_QUERY_DURATION = Histogram(
    "so_db_query_duration_seconds",
    "Time PostgreSQL took to execute a statement, as seen by the client, by operation.",
    ["operation"],
    buckets=FAST_BUCKETS,
)
DB_SLOW_QUERIES = Counter(
    "so_db_slow_queries",
    "Statements slower than SO_DB_SLOW_QUERY_MS (each also writes one db.slow_query line).",
    ["operation"],
)
DB_ERRORS = Counter(
    "so_db_errors",
    "Statements that failed, by kind (timeout, connection, integrity, other).",
    ["kind"],
)

# --- Redis ---------------------------------------------------------------------------------

REDIS_COMMAND_DURATION = Histogram(
    "so_redis_command_duration_seconds",
    "Round trip of a Redis command or pipeline (blocking reads excluded), by command.",
    ["command"],
    buckets=FAST_BUCKETS,
)
REDIS_COMMAND_ERRORS = Counter(
    "so_redis_command_errors",
    "Redis commands that failed, by command and kind (timeout, connection, error).",
    ["command", "kind"],
)

# --- external services (FMCSA, Stripe) -----------------------------------------------------

EXTERNAL_CALL_DURATION = Histogram(
    "so_external_call_duration_seconds",
    "Duration of one call to an external service, by dependency, operation and outcome "
    "(ok, error, timeout).",
    ["dependency", "operation", "outcome"],
    buckets=LATENCY_BUCKETS,
)
EXTERNAL_CALL_ERRORS = Counter(
    "so_external_call_errors",
    "Failed calls to an external service, by dependency, operation and kind (timeout, "
    "connection, http_4xx, http_5xx, rate_limited, circuit_open, other).",
    ["dependency", "operation", "kind"],
)
EXTERNAL_BUDGET_WAIT = Histogram(
    "so_external_budget_wait_seconds",
    "Time a caller waited for the shared call budget of an external service.",
    ["dependency"],
    buckets=LATENCY_BUCKETS,
)
CIRCUIT_BREAKER_STATE = Gauge(
    "so_circuit_breaker_state",
    "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
    ["dependency"],
    multiprocess_mode="max",
)
CIRCUIT_BREAKER_TRANSITIONS = Counter(
    "so_circuit_breaker_transitions",
    "Circuit breaker state changes, by dependency and the state entered.",
    ["dependency", "state"],
)

# --- jobs ----------------------------------------------------------------------------------

JOBS_QUEUE_DEPTH = Gauge(
    "so_jobs_queue_depth",
    "Jobs waiting to run (status todo), by queue.",
    ["queue"],
    multiprocess_mode="max",
)
JOBS_OLDEST_AGE = Gauge(
    "so_jobs_oldest_age_seconds",
    "Age of the oldest job waiting to run, by queue (0 when none waits).",
    ["queue"],
    multiprocess_mode="max",
)
JOBS_DEFERRED = Counter(
    "so_jobs_deferred",
    "Jobs deferred, by task.",
    ["task"],
)
JOB_DURATION = Histogram(
    "so_job_duration_seconds",
    "Duration of one job run, by task and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
    buckets=JOB_BUCKETS,
)
JOB_RETRIES = Counter(
    "so_job_retries",
    "Job runs that failed and were scheduled again, by task.",
    ["task"],
)
JOB_FAILURES = Counter(
    "so_job_failures",
    "Jobs that failed for good (no retry left), by task.",
    ["task"],
)

# --- GPS -----------------------------------------------------------------------------------

GPS_FIXES_ACCEPTED = Counter(
    "so_gps_fixes_accepted",
    "GPS fixes accepted and buffered.",
)
GPS_FIXES_REJECTED = Counter(
    "so_gps_fixes_rejected",
    "GPS fixes rejected, by reason.",
    ["reason"],
)
GPS_STREAM_LENGTH = Gauge(
    "so_gps_stream_length",
    "Entries in the GPS Redis stream.",
    multiprocess_mode="max",
)
GPS_CONSUMER_LAG = Gauge(
    "so_gps_consumer_lag",
    "Stream entries not yet delivered to the consumer group.",
    multiprocess_mode="max",
)
GPS_PING_TO_DECISION = Histogram(
    "so_gps_ping_to_decision_seconds",
    "Time from a ping's arrival to its geofence decision.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
)

# --- business ------------------------------------------------------------------------------

LOADS_POSTED = Counter("so_loads_posted", "Loads posted to the board.")
LOADS_ASSIGNED = Counter("so_loads_assigned", "Loads assigned to a carrier.")
LOADS_COVERED = Counter(
    "so_loads_covered",
    "Loads covered: a driver is released on an assigned load.",
)
LOAD_TIME_TO_COVER = Histogram(
    "so_load_time_to_cover_seconds",
    "Time from posting a load to its coverage.",
    buckets=COVER_BUCKETS,
)
PAYMENTS = Counter(
    "so_payments",
    "Payment attempts settled, by outcome (succeeded, failed).",
    ["outcome"],
)
# A labelled series appears with its first increment, which rate() and increase()
# cannot see (they need an earlier sample): exported at 0 from the start, the first
# failed payment counts in the dashboard and in PaymentFailureRateHigh.
for _outcome in ("succeeded", "failed"):
    PAYMENTS.labels(_outcome)

PAYMENT_PROCESSING = Histogram(
    "so_payment_processing_seconds",
    "Time from a payment attempt's creation to its final outcome.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
FRAUD_FLAGS = Counter(
    "so_fraud_flags",
    "Fraud signals raised, by reason.",
    ["reason"],
)

# Every family this module defines, by its exposition name (counters without
# ``_total``). Tests and the dashboard check read this.
FAMILIES: Final = tuple(
    metric._name  # prometheus-client keeps no public accessor for it
    for metric in (
        HTTP_REQUESTS, HTTP_REQUEST_DURATION, ERRORS,
        DB_POOL_SIZE, DB_POOL_CHECKED_OUT, DB_POOL_OVERFLOW, DB_POOL_WAIT, DB_POOL_TIMEOUTS,
        DB_QUERY_DURATION, DB_SLOW_QUERIES, DB_ERRORS,
        REDIS_COMMAND_DURATION, REDIS_COMMAND_ERRORS,
        EXTERNAL_CALL_DURATION, EXTERNAL_CALL_ERRORS, EXTERNAL_BUDGET_WAIT,
        CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_TRANSITIONS,
        JOBS_QUEUE_DEPTH, JOBS_OLDEST_AGE, JOBS_DEFERRED, JOB_DURATION, JOB_RETRIES,
        JOB_FAILURES,
        GPS_FIXES_ACCEPTED, GPS_FIXES_REJECTED, GPS_STREAM_LENGTH, GPS_CONSUMER_LAG,
        GPS_PING_TO_DECISION,
        LOADS_POSTED, LOADS_ASSIGNED, LOADS_COVERED, LOAD_TIME_TO_COVER,
        PAYMENTS, PAYMENT_PROCESSING, FRAUD_FLAGS,
    )
)  # fmt: skip

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
_BREAKER_VALUES: Final[dict[str, float]] = {
    "closed": 0.0,
    "half_open": 1.0,
    "half-opened": 1.0,
    "open": 2.0,
    "opened": 2.0,
}


def status_class(status: int) -> str:
    """``404`` -> ``"4xx"``; anything outside 100-599 counts as ``"5xx"``."""
    index = status // 100 - 1
    return _STATUS_CLASSES[index] if 0 <= index < len(_STATUS_CLASSES) else "5xx"


class _Tally:
    """Observations of one label set since the last flush."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self, slots: int) -> None:
        self.count = 0
        self.total = 0.0
        # One slot per bucket bound, then +Inf, as the histogram keeps them.
        self.buckets = [0] * slots


# Observations on hot paths (each request, each statement, each pool checkout) are
# tallied in plain Python objects and added to the shared metrics by
# flush_tallies(): every second, on each scrape and at shutdown. Writing each one to
# the memory-mapped files took locked writes, about 12 us per request on the
# benchmark machine. A process killed with SIGKILL loses at most its last second.
_tally_lock = threading.Lock()
_tallied: list[TalliedHistogram] = []
# Called by each flush: gauges read from their source once a second instead of
# being written on every change (the database pool's).
_samplers: list[Callable[[], None]] = []
FLUSH_INTERVAL_S: Final = 1.0


class TalliedHistogram:
    """A histogram family (and optionally a counter with the same labels) whose
    observations wait in memory until :func:`flush_tallies`."""

    def __init__(
        self, histogram: Histogram, bounds: tuple[float, ...], counter: Counter | None = None
    ) -> None:
        self._histogram = histogram
        self._bounds = bounds
        self._counter = counter
        self._pending: dict[tuple[str, ...], _Tally] = {}
        # labels() validates and locks on every call, so children are looked up once.
        self._children: dict[tuple[str, ...], tuple[Histogram, Counter | None]] = {}
        _tallied.append(self)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Tally one observation of ``value`` under ``labels`` (low-cardinality values only)."""
        with _tally_lock:
            tally = self._pending.get(labels)
            if tally is None:
                tally = self._pending[labels] = _Tally(len(self._bounds) + 1)
            tally.count += 1
            tally.total += value
            tally.buckets[bisect_left(self._bounds, value)] += 1

    def flush(self) -> None:
        with _tally_lock:
            pending, self._pending = self._pending, {}
        for labels, tally in pending.items():
            children = self._children.get(labels)
            if children is None:
                histogram = self._histogram.labels(*labels) if labels else self._histogram
                counter = self._counter
                if counter is not None and labels:
                    counter = counter.labels(*labels)
                children = self._children[labels] = (histogram, counter)
            histogram, counter = children
            if counter is not None:
                counter.inc(tally.count)
            # prometheus-client has no call that adds many observations at once; a
            # histogram child keeps one value per bucket (+Inf last) and one for the sum.
            histogram._sum.inc(tally.total)
            for index, count in enumerate(tally.buckets):
                if count:
                    histogram._buckets[index].inc(count)


def register_sampler(sampler: Callable[[], None]) -> None:
    """Call ``sampler`` at each flush, to set gauges from their source."""
    _samplers.append(sampler)


def flush_tallies() -> None:
    """Add the tallied observations to their metric families and run the samplers."""
    for family in _tallied:
        family.flush()
    for sampler in _samplers:
        sampler()


_HTTP = TalliedHistogram(HTTP_REQUEST_DURATION, LATENCY_BUCKETS, counter=HTTP_REQUESTS)
DB_POOL_WAIT_TALLY = TalliedHistogram(DB_POOL_WAIT, FAST_BUCKETS)
DB_QUERY_DURATION_TALLY = TalliedHistogram(DB_QUERY_DURATION, FAST_BUCKETS)


def record_http_request(method: str, route: str, status: int, duration_s: float) -> None:
    """Count one request under its route template (never the raw path)."""
    if method not in _METHODS:
        method = "OTHER"
    _HTTP.observe((method, route, status_class(status)), duration_s)


class MetricsFlusher:
    """A daemon thread that calls :func:`flush_tallies` every ``interval_s`` seconds.

    A thread rather than an event-loop task: it keeps flushing while the loop is
    busy, and stopping it needs no running loop.
    """

    def __init__(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and flush what is left."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        flush_tallies()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            flush_tallies()


def count_error(source: Literal["http", "job"], error_class: ErrorClass, code: str) -> None:
    ERRORS.labels(source, error_class, code).inc()


def set_circuit_state(dependency: str, state: str) -> None:
    """Record a breaker's state; accepts ours and purgatory's spellings."""
    value = _BREAKER_VALUES.get(state)
    if value is None:
        raise ValueError(f"unknown circuit state {state!r}")
    CIRCUIT_BREAKER_STATE.labels(dependency).set(value)
    canonical = {0.0: "closed", 1.0: "half_open", 2.0: "open"}[value]
    CIRCUIT_BREAKER_TRANSITIONS.labels(dependency, canonical).inc()


@dataclass(slots=True)
class ExternalCall:
    """Handle of one timed external call; set ``error_kind`` to classify a failure
    the context manager cannot see (for example a 4xx answer that raised nothing)."""

    dependency: str
    operation: str
    error_kind: str | None = None


@contextmanager
def external_call(dependency: str, operation: str) -> Iterator[ExternalCall]:
    """Time a call to FMCSA, Stripe or another service and count its failure kind.

    ``operation`` is a fixed name such as ``"carrier_lookup"`` or ``"create_charge"``,
    never a URL with ids in it.
    """
    call = ExternalCall(dependency, operation)
    started = time.perf_counter()
    try:
        yield call
    except BaseException as exc:
        if call.error_kind is None:
            call.error_kind = classify_external_error(exc)
        raise
    finally:
        elapsed = time.perf_counter() - started
        kind = call.error_kind
        if kind is None:
            outcome = "ok"
        elif kind == "timeout":
            outcome = "timeout"
        else:
            outcome = "error"
        EXTERNAL_CALL_DURATION.labels(dependency, operation, outcome).observe(elapsed)
        if kind is not None:
            EXTERNAL_CALL_ERRORS.labels(dependency, operation, kind).inc()


def classify_external_error(exc: BaseException) -> str:
    """Map an exception from an HTTP client or SDK to a failure kind label."""
    import httpx  # imported here: only processes that call out pay for it

    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 429:
            return "rate_limited"
        return "http_5xx" if status >= 500 else "http_4xx"
    if isinstance(exc, (httpx.TransportError, ConnectionError)):
        return "connection"
    # Errors of our own integrations may carry their classification.
    kind = getattr(exc, "metric_kind", None)
    return kind if isinstance(kind, str) else "other"


# --- exposition ----------------------------------------------------------------------------


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render_latest() -> bytes:
    """Exposition text for ``/metrics``: the aggregate of every process in
    multiprocess mode, this process's registry otherwise."""
    flush_tallies()
    if multiprocess_mode():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a stopped process's live gauges (pool gauges) from the shared directory."""
    if multiprocess_mode():
        pid = pid if pid is not None else os.getpid()
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def start_metrics_server(port: int, address: str = "127.0.0.1") -> None:
    """Serve this process's metrics on ``address:port`` from a background thread.

    For the worker and gps-consumer processes: each is one process with one
    registry and its own scrape target. ``port`` 0 disables the server.
    """
    if port == 0:
        return
    if multiprocess_mode():
        # The api's shared directory must not receive another process type's
        # samples: /metrics there would add them to the api's.
        log.warning("metrics.multiprocess_dir_in_single_process", env=MULTIPROC_ENV)
    start_http_server(port, addr=address, registry=REGISTRY)
    # This server does not flush on a scrape, so tallies are flushed every second.
    MetricsFlusher().start()
    log.info("metrics.server_started", address=address, port=port)
