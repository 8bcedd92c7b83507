"""Each metric family exists and moves when its event happens."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from superior_one.accounts.models import OrganizationType
from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.observability import metrics
from superior_one.redis import create_redis
from superior_one.resources import Resources, open_resources
from tests.factories import auth_headers, create_organization, create_user
from tests.loads.factories import create_party, load_payload
from tests.observability.conftest import CapturedLogs, MetricReader

ROOT = Path(__file__).resolve().parents[2]
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


def _registered_names() -> set[str]:
    return {family.name for family in REGISTRY.collect()}


@pytest.fixture
async def failing_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)

    @application.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    @application.get("/test/redis-down")
    async def redis_down() -> None:
        raise RedisConnectionError("connection refused")

    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


class TestFamilies:
    def test_metrics_every_family_is_registered(self) -> None:
        missing = set(metrics.FAMILIES) - _registered_names()

        assert missing == set()

    def test_metrics_families_have_no_id_labels(self) -> None:
        labels = {
            label
            for family in REGISTRY.collect()
            if family.name.startswith("so_")
            for sample in family.samples
            for label in sample.labels
        }

        assert not {label for label in labels if label.endswith("_id") or label == "id"}


class TestHttp:
    async def test_metrics_request_counted_under_route_template(
        self,
        client: httpx.AsyncClient,
        metric: MetricReader,
        resources: Resources,
        settings: Settings,
    ) -> None:
        organization = await create_organization(resources.sessionmaker)
        user = await create_user(resources.sessionmaker, settings, organization)
        labels = {"method": "GET", "route": "/me", "status_class": "2xx"}
        before = metric("so_http_requests_total", **labels)

        response = await client.get("/me", headers=auth_headers(settings, user))

        assert response.status_code == 200
        assert metric("so_http_requests_total", **labels) == before + 1

    async def test_metrics_latency_histogram_observes_request(
        self, client: httpx.AsyncClient, metric: MetricReader
    ) -> None:
        labels = {"method": "GET", "route": "/health/live", "status_class": "2xx"}
        before = metric("so_http_request_duration_seconds_count", **labels)

        await client.get("/health/live")

        assert metric("so_http_request_duration_seconds_count", **labels) == before + 1

    async def test_metrics_unknown_path_counted_as_unmatched(
        self, client: httpx.AsyncClient, metric: MetricReader
    ) -> None:
        labels = {"method": "GET", "route": "unmatched", "status_class": "4xx"}
        before = metric("so_http_requests_total", **labels)

        await client.get(f"/no-such-route/{uuid.uuid4()}")

        assert metric("so_http_requests_total", **labels) == before + 1

    async def test_metrics_client_error_classified(
        self, client: httpx.AsyncClient, metric: MetricReader
    ) -> None:
        labels = {"source": "http", "error_class": "client", "code": "token_missing"}
        before = metric("so_errors_total", **labels)

        response = await client.get("/me")

        assert response.status_code == 401
        assert metric("so_errors_total", **labels) == before + 1

    async def test_metrics_server_error_classified(
        self, failing_app: httpx.AsyncClient, metric: MetricReader
    ) -> None:
        labels = {"source": "http", "error_class": "server", "code": "internal_error"}
        before = metric("so_errors_total", **labels)

        response = await failing_app.get("/test/boom")

        assert response.status_code == 500
        assert metric("so_errors_total", **labels) == before + 1

    async def test_metrics_dependency_error_classified_and_answered_503(
        self, failing_app: httpx.AsyncClient, metric: MetricReader
    ) -> None:
        labels = {"source": "http", "error_class": "dependency", "code": "dependency_unavailable"}
        before = metric("so_errors_total", **labels)

        response = await failing_app.get("/test/redis-down")

        assert response.status_code == 503
        assert metric("so_errors_total", **labels) == before + 1

    def test_metrics_flushed_tallies_equal_direct_observations(self) -> None:
        # Any bound missed or shifted by one would show up as a differing bucket.
        route = f"/test/tally-{uuid.uuid4().hex[:8]}"
        durations = [0.0, 0.0005, 0.001, 0.0011, 0.3, 0.30001, 9.99, 10.0, 10.5, 120.0]
        reference = CollectorRegistry()
        expected = Histogram(
            "so_http_request_duration_seconds",
            "reference",
            ["method", "route", "status_class"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=reference,
        ).labels("GET", route, "2xx")
        for duration in durations:
            metrics.record_http_request("GET", route, 200, duration)
            expected.observe(duration)

        metrics.flush_tallies()

        labels = {"method": "GET", "route": route, "status_class": "2xx"}
        for bound in [*(str(b) for b in metrics.LATENCY_BUCKETS), "+Inf"]:
            name = "so_http_request_duration_seconds_bucket"
            assert REGISTRY.get_sample_value(name, {**labels, "le": bound}) == (
                reference.get_sample_value(name, {**labels, "le": bound})
            ), bound
        assert REGISTRY.get_sample_value(
            "so_http_request_duration_seconds_sum", labels
        ) == pytest.approx(sum(durations))
        assert REGISTRY.get_sample_value("so_http_requests_total", labels) == len(durations)

    def test_metrics_unknown_method_tallied_as_other(self, metric: MetricReader) -> None:
        route = f"/test/method-{uuid.uuid4().hex[:8]}"

        metrics.record_http_request("BREW", route, 418, 0.01)

        labels = {"method": "OTHER", "route": route, "status_class": "4xx"}
        assert metric("so_http_requests_total", **labels) == 1

    def test_metrics_tallies_flushed_without_scrape(self) -> None:
        route = f"/test/periodic-{uuid.uuid4().hex[:8]}"
        labels = {"method": "GET", "route": route, "status_class": "2xx"}
        flusher = metrics.MetricsFlusher(interval_s=0.01)
        flusher.start()
        try:
            metrics.record_http_request("GET", route, 200, 0.01)
            deadline = time.monotonic() + 2
            while REGISTRY.get_sample_value("so_http_requests_total", labels) is None:
                assert time.monotonic() < deadline, "not flushed within 2 s"
                time.sleep(0.01)
        finally:
            flusher.stop()

        assert REGISTRY.get_sample_value("so_http_requests_total", labels) == 1

    async def test_metrics_endpoint_serves_exposition(self, client: httpx.AsyncClient) -> None:
        await client.get("/health/live")

        response = await client.get("/metrics")

        assert response.status_code == 200
        assert "so_http_requests_total{" in response.text

    async def test_metrics_endpoint_requires_configured_token(self, settings: Settings) -> None:
        application = create_app(
            settings.model_copy(update={"metrics_token": SecretStr("scrape-secret")})
        )
        transport = httpx.ASGITransport(app=application)
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(transport=transport, base_url="http://api") as http,
        ):
            await application.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
            anonymous = await http.get("/metrics")
            authorized = await http.get(
                "/metrics", headers={"Authorization": "Bearer scrape-secret"}
            )

        assert anonymous.status_code == 401
        assert authorized.status_code == 200


class TestFlusher:
    async def test_flusher_runs_only_with_metrics_on(self, settings: Settings) -> None:
        for enabled in (True, False):
            app = create_app(settings.model_copy(update={"metrics_enabled": enabled}))
            async with app.router.lifespan_context(app):
                flusher = app.state.metrics_flusher

            assert (flusher is not None) is enabled

    def test_metrics_server_flushes_tallies(self) -> None:
        # The worker's and gps-consumer's server does not flush on a scrape.
        route = f"/test/served-{uuid.uuid4().hex[:8]}"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        metrics.start_metrics_server(port)

        metrics.record_http_request("GET", route, 200, 0.01)

        deadline = time.monotonic() + 5
        while route not in httpx.get(f"http://127.0.0.1:{port}/metrics").text:
            assert time.monotonic() < deadline, "not flushed within 5 s"
            time.sleep(0.05)


class TestLabels:
    async def test_metrics_label_values_carry_no_uuid(
        self, client: httpx.AsyncClient, resources: Resources, settings: Settings
    ) -> None:
        shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
        posted = await client.post("/loads", json=load_payload(post=True), headers=shipper.headers)
        load_id = posted.json()["id"]
        request_id = {"X-Request-ID": str(uuid.uuid4())}
        for path in (
            f"/loads/{load_id}",
            f"/loads/{uuid.uuid4()}",
            f"/loads/{load_id}/fraud-flags",
            f"/carriers/{uuid.uuid4()}",
            f"/invoices/{uuid.uuid4()}",
            f"/no-such-route/{uuid.uuid4()}",
            f"/tracking/carriers/{shipper.organization.id}/fraud-flags",
        ):
            await client.get(path, headers={**shipper.headers, **request_id})
        await client.post(f"/loads/{load_id}/gps-ping", json={}, headers=shipper.headers)

        exposition = (await client.get("/metrics")).text

        values = {
            value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            for value in sample.labels.values()
        }
        assert posted.status_code == 201, posted.text
        assert "/loads/{load_id}" in values
        assert {value for value in values if UUID_PATTERN.search(value)} == set()


class TestDatabase:
    async def test_metrics_query_duration_observed_by_operation(
        self, resources: Resources, metric: MetricReader
    ) -> None:
        before = metric("so_db_query_duration_seconds_count", operation="select")

        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

        assert metric("so_db_query_duration_seconds_count", operation="select") >= before + 1

    async def test_metrics_pool_checked_out_while_connection_held(
        self, resources: Resources, metric: MetricReader
    ) -> None:
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            held = metric("so_db_pool_checked_out")

        assert held >= 1
        assert metric("so_db_pool_checked_out") == held - 1

    async def test_metrics_pool_size_reports_configured_size(
        self, resources: Resources, settings: Settings, metric: MetricReader
    ) -> None:
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

        assert metric("so_db_pool_size") == settings.db_pool_size

    async def test_metrics_pool_overflow_counts_connections_beyond_size(
        self, settings: Settings, metric: MetricReader
    ) -> None:
        async with (
            open_resources(settings, pool_size=1) as small,
            small.engine.connect() as first,
            small.engine.connect() as second,
        ):
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            overflow = metric("so_db_pool_overflow")

        assert overflow == 1

    async def test_metrics_pool_wait_observed(
        self, resources: Resources, metric: MetricReader
    ) -> None:
        before = metric("so_db_pool_wait_seconds_count")

        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

        assert metric("so_db_pool_wait_seconds_count") >= before + 1

    async def test_metrics_pool_timeout_counted(
        self, settings: Settings, metric: MetricReader
    ) -> None:
        tight = settings.model_copy(update={"db_max_overflow": 0, "db_pool_timeout_s": 0.05})
        before = metric("so_db_pool_timeouts_total")

        async with open_resources(tight, pool_size=1) as small, small.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            with pytest.raises(PoolTimeoutError):
                async with small.engine.connect():
                    pass

        assert metric("so_db_pool_timeouts_total") == before + 1

    async def test_metrics_slow_query_logged_without_values(
        self, settings: Settings, metric: MetricReader, captured_logs: CapturedLogs
    ) -> None:
        slow = settings.model_copy(update={"db_slow_query_ms": 30.0})

        async with open_resources(slow) as opened, opened.engine.connect() as conn:
            # Connect first, so the connection's own setup statements are not counted.
            await conn.execute(text("SELECT 1"))
            before = metric("so_db_slow_queries_total", operation="select")
            await conn.execute(
                text("SELECT pg_sleep(0.1), 'literal-Vb7', :bound"), {"bound": "bound-Kq2"}
            )
            after = metric("so_db_slow_queries_total", operation="select")

        [line] = [e for e in captured_logs.events("db.slow_query") if "pg_sleep" in e["statement"]]
        assert after == before + 1
        assert line["statement"] == "SELECT pg_sleep(...), ?, ?"
        assert re.fullmatch(r"[0-9a-f]{16}", line["fingerprint"])
        assert [s for s in ("literal-Vb7", "bound-Kq2") if s in captured_logs.text] == []

    async def test_metrics_statement_timeout_counted_as_db_error(
        self, resources: Resources, metric: MetricReader
    ) -> None:
        before = metric("so_db_errors_total", kind="timeout")

        async with resources.engine.connect() as conn:
            await conn.execute(text("SET statement_timeout = 10"))
            with pytest.raises(OperationalError):
                await conn.execute(text("SELECT pg_sleep(1)"))

        assert metric("so_db_errors_total", kind="timeout") == before + 1


class TestRedis:
    async def test_metrics_command_latency_observed(
        self, resources: Resources, settings: Settings, metric: MetricReader
    ) -> None:
        before = metric("so_redis_command_duration_seconds_count", command="SET")

        await resources.redis.set(f"{settings.redis_namespace}:obs-test", b"1", ex=5)

        assert metric("so_redis_command_duration_seconds_count", command="SET") == before + 1

    async def test_metrics_pipeline_latency_observed(
        self, resources: Resources, settings: Settings, metric: MetricReader
    ) -> None:
        before = metric("so_redis_command_duration_seconds_count", command="MULTI")

        async with resources.redis.pipeline(transaction=True) as pipe:
            pipe.incr(f"{settings.redis_namespace}:obs-counter").expire(
                f"{settings.redis_namespace}:obs-counter", 5
            )
            await pipe.execute()

        assert metric("so_redis_command_duration_seconds_count", command="MULTI") == before + 1

    async def test_metrics_connection_error_counted(
        self, settings: Settings, metric: MetricReader
    ) -> None:
        closed_port = _closed_port()
        client = create_redis(
            settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})
        )
        before = metric("so_redis_command_errors_total", command="GET", kind="connection")

        try:
            with pytest.raises(RedisConnectionError):
                await client.get("anything")
        finally:
            await client.aclose()

        assert (
            metric("so_redis_command_errors_total", command="GET", kind="connection") == before + 1
        )

    async def test_metrics_timeout_counted(self, settings: Settings, metric: MetricReader) -> None:
        # A server that accepts connections and never replies.
        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = create_redis(
            settings.model_copy(
                update={"redis_url": f"redis://127.0.0.1:{port}/0", "redis_socket_timeout_s": 0.05}
            )
        )
        before = metric("so_redis_command_errors_total", command="GET", kind="timeout")

        try:
            with pytest.raises(RedisTimeoutError):
                await client.get("anything")
        finally:
            await client.aclose()
            server.close()

        assert metric("so_redis_command_errors_total", command="GET", kind="timeout") == before + 1


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestExternalCalls:
    async def test_metrics_external_timeout_counted(self, metric: MetricReader) -> None:
        def timeout(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadTimeout("slow", request=request)

        labels = {"dependency": "fmcsa", "operation": "test_lookup"}
        before = metric("so_external_call_errors_total", **labels, kind="timeout")

        async with httpx.AsyncClient(transport=httpx.MockTransport(timeout)) as http:
            with pytest.raises(httpx.ReadTimeout), metrics.external_call("fmcsa", "test_lookup"):
                await http.get("http://fmcsa.invalid/carriers/1")

        assert metric("so_external_call_errors_total", **labels, kind="timeout") == before + 1
        assert metric("so_external_call_duration_seconds_count", **labels, outcome="timeout") >= 1

    async def test_metrics_external_5xx_counted(self, metric: MetricReader) -> None:
        def unavailable(_request: httpx.Request) -> httpx.Response:
            return httpx.Response(503)

        labels = {"dependency": "stripe", "operation": "test_charge"}
        before = metric("so_external_call_errors_total", **labels, kind="http_5xx")

        async with httpx.AsyncClient(transport=httpx.MockTransport(unavailable)) as http:
            with (
                pytest.raises(httpx.HTTPStatusError),
                metrics.external_call("stripe", "test_charge"),
            ):
                (await http.post("http://stripe.invalid/v1/charges")).raise_for_status()

        assert metric("so_external_call_errors_total", **labels, kind="http_5xx") == before + 1

    def test_metrics_external_success_observed(self, metric: MetricReader) -> None:
        labels = {"dependency": "stripe", "operation": "test_ok", "outcome": "ok"}
        before = metric("so_external_call_duration_seconds_count", **labels)

        with metrics.external_call("stripe", "test_ok"):
            pass

        assert metric("so_external_call_duration_seconds_count", **labels) == before + 1

    def test_metrics_circuit_state_open_is_two(self, metric: MetricReader) -> None:
        metrics.set_circuit_state("test-breaker", "opened")

        assert metric("so_circuit_breaker_state", dependency="test-breaker") == 2

    def test_metrics_circuit_transition_counted(self, metric: MetricReader) -> None:
        before = metric(
            "so_circuit_breaker_transitions_total", dependency="test-breaker", state="half_open"
        )

        metrics.set_circuit_state("test-breaker", "half-opened")

        assert (
            metric(
                "so_circuit_breaker_transitions_total", dependency="test-breaker", state="half_open"
            )
            == before + 1
        )


# These families are moved through their metric objects here. Each is also checked
# through the code that records it, in this folder: jobs and queues in
# test_job_observability.py, GPS in test_gps_metrics.py, loads and fraud flags in
# test_business_metrics.py, payments in test_payment_metrics.py.
class TestDomainFamilies:
    @pytest.mark.parametrize(
        ("sample", "labels", "move"),
        [
            (
                "so_jobs_queue_depth",
                {"queue": "t"},
                lambda: metrics.JOBS_QUEUE_DEPTH.labels("t").set(3),
            ),
            (
                "so_jobs_oldest_age_seconds",
                {"queue": "t"},
                lambda: metrics.JOBS_OLDEST_AGE.labels("t").set(9),
            ),
            ("so_job_retries_total", {"task": "t"}, lambda: metrics.JOB_RETRIES.labels("t").inc()),
            (
                "so_job_failures_total",
                {"task": "t"},
                lambda: metrics.JOB_FAILURES.labels("t").inc(),
            ),
            ("so_gps_fixes_accepted_total", {}, lambda: metrics.GPS_FIXES_ACCEPTED.inc()),
            (
                "so_gps_fixes_rejected_total",
                {"reason": "t"},
                lambda: metrics.GPS_FIXES_REJECTED.labels("t").inc(),
            ),
            ("so_gps_stream_length", {}, lambda: metrics.GPS_STREAM_LENGTH.set(12)),
            ("so_gps_consumer_lag", {}, lambda: metrics.GPS_CONSUMER_LAG.set(4)),
            (
                "so_payments_total",
                {"outcome": "failed"},
                lambda: metrics.PAYMENTS.labels("failed").inc(),
            ),
            (
                "so_fraud_flags_total",
                {"reason": "t"},
                lambda: metrics.FRAUD_FLAGS.labels("t").inc(),
            ),
        ],
    )
    def test_metrics_domain_family_moves(
        self, metric: MetricReader, sample: str, labels: dict[str, str], move: object
    ) -> None:
        metrics.JOBS_QUEUE_DEPTH.labels("t").set(0)
        before = metric(sample, **labels)

        move()  # type: ignore[operator]

        assert metric(sample, **labels) != before


class TestMultiprocess:
    def test_metrics_processes_add_up_in_shared_directory(self, tmp_path: Path) -> None:
        script = (
            "from superior_one.observability import metrics\n"
            "metrics.record_http_request('GET', '/health/live', 200, 0.01)\n"
            "metrics.flush_tallies()\n"
        )
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        for _ in range(2):
            subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=ROOT)  # noqa: S603
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))

        total = registry.get_sample_value(
            "so_http_requests_total",
            {"method": "GET", "route": "/health/live", "status_class": "2xx"},
        )

        assert total == 2


class TestPrepareDirectory:
    def test_prepare_multiprocess_dir_empties_and_selects_it(self, tmp_path: Path) -> None:
        target = tmp_path / "metrics"
        target.mkdir()
        (target / "counter_1.db").write_bytes(b"stale")
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from superior_one.observability.multiprocess import prepare_multiprocess_dir\n"
            "prepare_multiprocess_dir(Path(sys.argv[1]))\n"
            "from superior_one.observability.metrics import record_http_request\n"
            "record_http_request('GET', '/health/live', 200, 0.01)\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}

        subprocess.run(  # noqa: S603
            [sys.executable, "-c", script, str(target)], env=env, check=True, cwd=ROOT
        )

        names = sorted(p.name for p in target.iterdir())
        assert "counter_1.db" not in names
        assert any(name.startswith("counter_") for name in names)

    def test_prepare_multiprocess_dir_rejects_late_call(self, tmp_path: Path) -> None:
        from superior_one.observability.multiprocess import prepare_multiprocess_dir

        with pytest.raises(RuntimeError, match="already imported"):
            prepare_multiprocess_dir(tmp_path / "late")
