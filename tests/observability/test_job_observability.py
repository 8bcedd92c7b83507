"""A job's span links to the request that deferred it; its log lines carry the job and
trace ids; its deferral, duration, retries and failures are counted when they happen."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.jobs import defer
from superior_one.jobs.worker import publish_queue_metrics
from superior_one.observability.tracing import current_tracing
from superior_one.resources import Resources
from tests.jobs.helpers import dsn, job_row, run_worker_until, worker_settings
from tests.jobs.sample_tasks import (
    EFFECTS_TABLE,
    fail_for_good,
    fail_transiently_once,
    record_effect,
)
from tests.observability.conftest import CapturedLogs, MetricReader


@pytest.fixture
def jobs_settings(settings: Settings) -> Settings:
    with psycopg.connect(dsn(settings), autocommit=True) as conn:
        conn.execute(EFFECTS_TABLE)
        conn.execute("TRUNCATE test_job_effects")
    return worker_settings(settings)


async def _defer_in_request_span(
    resources: Resources, task: object, **kwargs: object
) -> tuple[int, int]:
    """Defer a job inside a span standing for the request; return (job id, span id)."""
    tracing = current_tracing()
    assert tracing is not None
    with tracing.tracer.start_as_current_span("POST /loads") as request_span:
        async with unit_of_work(resources.sessionmaker) as session:
            job_id = await defer(session, task, **kwargs)  # type: ignore[arg-type]
    return job_id, request_span.get_span_context().span_id


async def test_job_span_links_to_deferring_request(
    jobs_settings: Settings, resources: Resources, span_exporter: InMemorySpanExporter
) -> None:
    job_id, request_span_id = await _defer_in_request_span(
        resources, record_effect, effect_key="traced"
    )

    async def succeeded() -> bool:
        return job_row(jobs_settings, job_id)[0] == "succeeded"

    await run_worker_until(jobs_settings, succeeded)

    [job_span] = [
        s for s in span_exporter.get_finished_spans() if s.name == "job tests.record_effect"
    ]
    assert [link.context.span_id for link in job_span.links] == [request_span_id]
    assert job_span.attributes is not None
    assert job_span.attributes["job.id"] == job_id


async def test_job_log_lines_carry_job_and_trace_ids(
    jobs_settings: Settings,
    resources: Resources,
    span_exporter: InMemorySpanExporter,
    captured_logs: CapturedLogs,
) -> None:
    job_id, _ = await _defer_in_request_span(resources, record_effect, effect_key="logged")

    async def succeeded() -> bool:
        return job_row(jobs_settings, job_id)[0] == "succeeded"

    await run_worker_until(jobs_settings, succeeded)

    [line] = [e for e in captured_logs.events("job.succeeded") if e.get("job_id") == job_id]
    [job_span] = [
        s for s in span_exporter.get_finished_spans() if s.name == "job tests.record_effect"
    ]
    assert line["trace_id"] == format(job_span.context.trace_id, "032x")


async def test_job_failure_counted_as_server_error(
    jobs_settings: Settings, resources: Resources, metric: MetricReader
) -> None:
    labels = {"source": "job", "error_class": "server", "code": "ValueError"}
    before = metric("so_errors_total", **labels)
    failures_before = metric("so_job_failures_total", task="tests.fail_for_good")
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, fail_for_good, effect_key="fails")

    async def failed() -> bool:
        return job_row(jobs_settings, job_id)[0] == "failed"

    await run_worker_until(jobs_settings, failed)

    assert metric("so_errors_total", **labels) == before + 1
    assert metric("so_job_failures_total", task="tests.fail_for_good") == failures_before + 1


async def test_job_queue_gauges_show_waiting_job(
    jobs_settings: Settings, resources: Resources, metric: MetricReader
) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        await defer(session, record_effect, effect_key="waiting")
    # One pass sets the gauges right away; the timeout ends the loop's sleep after it.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(publish_queue_metrics(resources, interval_s=60), timeout=5)

    assert metric("so_jobs_queue_depth", queue=record_effect.queue) == 1
    assert metric("so_jobs_oldest_age_seconds", queue=record_effect.queue) >= 0


async def _run_until_status(settings: Settings, job_id: int, status: str) -> None:
    async def reached() -> bool:
        return job_row(settings, job_id)[0] == status

    await run_worker_until(settings, reached)


async def test_job_deferral_counted_by_task(resources: Resources, metric: MetricReader) -> None:
    before = metric("so_jobs_deferred_total", task="tests.record_effect")

    async with unit_of_work(resources.sessionmaker) as session:
        await defer(session, record_effect, effect_key="counted")

    assert metric("so_jobs_deferred_total", task="tests.record_effect") == before + 1


async def test_job_duration_observed_as_succeeded(
    jobs_settings: Settings, resources: Resources, metric: MetricReader
) -> None:
    labels = {"task": "tests.record_effect", "outcome": "succeeded"}
    before = metric("so_job_duration_seconds_count", **labels)
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, record_effect, effect_key="timed")

    await _run_until_status(jobs_settings, job_id, "succeeded")

    assert metric("so_job_duration_seconds_count", **labels) == before + 1


async def test_job_retry_counted_then_succeeds(
    jobs_settings: Settings, resources: Resources, metric: MetricReader
) -> None:
    task = "tests.fail_transiently_once"
    retries_before = metric("so_job_retries_total", task=task)
    failures_before = metric("so_job_failures_total", task=task)
    retried_before = metric("so_job_duration_seconds_count", task=task, outcome="retried")
    succeeded_before = metric("so_job_duration_seconds_count", task=task, outcome="succeeded")
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, fail_transiently_once, effect_key="retried")

    await _run_until_status(jobs_settings, job_id, "succeeded")

    assert metric("so_job_retries_total", task=task) == retries_before + 1
    assert (
        metric("so_job_duration_seconds_count", task=task, outcome="retried") == retried_before + 1
    )
    assert (
        metric("so_job_duration_seconds_count", task=task, outcome="succeeded")
        == succeeded_before + 1
    )
    assert metric("so_job_failures_total", task=task) == failures_before
