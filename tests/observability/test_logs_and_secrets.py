"""Log lines carry request and trace ids; no credential or card number reaches logs,
metrics or Sentry, whatever a request sends."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from superior_one.config import Settings
from superior_one.observability.logging import (
    clear_bound_context,
    configure_logging,
    merge_bound_context,
    write_access_line,
)
from superior_one.observability.redaction import scrub_text
from superior_one.observability.sentry import setup_sentry, stop_sentry
from superior_one.observability.tracing import add_trace_ids, current_tracing
from superior_one.resources import Resources
from superior_one.simulators.fmcsa import SimulatorServer
from tests.factories import auth_headers, create_organization, create_user
from tests.observability.conftest import CARD_NUMBER, CapturedLogs, send_secrets


class TestIds:
    async def test_logs_access_line_has_request_id(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        captured_logs: CapturedLogs,
    ) -> None:
        response = await traced_client.get("/health/live", headers={"X-Request-ID": "req-obs-0001"})

        [line] = captured_logs.events("http.request")
        assert response.headers["x-request-id"] == line["request_id"] == "req-obs-0001"

    async def test_logs_access_line_has_trace_id(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        captured_logs: CapturedLogs,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        resources: Resources = traced_app.state.resources
        organization = await create_organization(resources.sessionmaker)
        user = await create_user(resources.sessionmaker, settings, organization)
        span_exporter.clear()

        await traced_client.get("/me", headers=auth_headers(settings, user))

        [server] = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
        [line] = captured_logs.events("http.request")
        assert line["trace_id"] == format(server.context.trace_id, "032x")
        assert line["span_id"] == format(server.context.span_id, "016x")

    @pytest.mark.usefixtures("span_exporter")
    def test_trace_ids_keep_leading_zeros(self) -> None:
        span = trace.NonRecordingSpan(trace.SpanContext(0x1F, 0x2, is_remote=False))

        with trace.use_span(span):
            event = add_trace_ids(None, "info", {})

        assert event["trace_id"] == "0" * 30 + "1f"
        assert event["span_id"] == "0" * 15 + "2"

    async def test_logs_unexpected_error_logged_once_with_ids(
        self, secret_client: httpx.AsyncClient, captured_logs: CapturedLogs
    ) -> None:
        response = await secret_client.post("/test/echo-fail", json={"a": 1})

        with_traceback = [line for line in captured_logs.lines() if "exception" in line]
        assert response.status_code == 500
        assert len(with_traceback) == 1
        assert with_traceback[0]["request_id"] == response.json()["requestId"]
        assert len(with_traceback[0]["trace_id"]) == 32

    async def test_logs_error_class_and_code_on_access_line(
        self, traced_client: httpx.AsyncClient, captured_logs: CapturedLogs
    ) -> None:
        await traced_client.get("/me")

        [line] = captured_logs.events("http.request")
        assert (line["error_class"], line["error_code"]) == ("client", "token_missing")

    # NOTE: job ids on log lines are bound by the jobs package's runner; its tests
    # check them once it lands.


class TestNoSecrets:
    async def test_logs_contain_no_secret_sent(
        self,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        fmcsa_simulator: SimulatorServer,
        captured_logs: CapturedLogs,
    ) -> None:
        secrets = await send_secrets(secret_client, secret_routes, settings, fmcsa_simulator)

        text = captured_logs.text
        assert captured_logs.events("http.request")  # the capture saw the requests
        assert captured_logs.events("fmcsa.call")  # and the FMCSA calls
        assert [s for s in secrets if s in text] == []

    async def test_console_logs_contain_no_secret_sent(
        self,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        fmcsa_simulator: SimulatorServer,
        console_logs: io.StringIO,
    ) -> None:
        secrets = await send_secrets(secret_client, secret_routes, settings, fmcsa_simulator)

        text = console_logs.getvalue()
        assert "Traceback (most recent call last)" in text  # the failing route was logged
        assert "fmcsa.call" in text
        assert [s for s in secrets if s in text] == []

    async def test_metrics_contain_no_secret_sent(
        self,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        fmcsa_simulator: SimulatorServer,
    ) -> None:
        secrets = await send_secrets(secret_client, secret_routes, settings, fmcsa_simulator)

        exposition = (await secret_client.get("/metrics")).text
        assert "so_http_requests_total" in exposition
        assert [s for s in secrets if s in exposition] == []


class _CapturingTransport(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def payload(self) -> str:
        return "\n".join(
            json.dumps(item.payload.json)
            for e in self.envelopes
            for item in e.items
            if item.payload.json is not None
        )


@pytest.fixture
def sentry_transport(settings: Settings) -> Iterator[_CapturingTransport]:
    transport = _CapturingTransport()
    configured = settings.model_copy(
        update={"sentry_dsn": SecretStr("http://public@127.0.0.1:9/1")}
    )
    assert setup_sentry(configured, service_name="test", transport=transport)
    try:
        yield transport
    finally:
        stop_sentry()


class TestSentry:
    async def test_sentry_event_carries_no_secret(
        self,
        sentry_transport: _CapturingTransport,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        fmcsa_simulator: SimulatorServer,
    ) -> None:
        secrets = await send_secrets(secret_client, secret_routes, settings, fmcsa_simulator)
        import sentry_sdk

        sentry_sdk.flush()

        payload = sentry_transport.payload()
        assert "RuntimeError" in payload
        assert [s for s in secrets if s in payload] == []

    def test_sentry_off_without_dsn(self, settings: Settings) -> None:
        assert setup_sentry(settings, service_name="test") is False


class TestScrubText:
    @pytest.mark.parametrize(
        "text",
        [
            "Authorization: Bearer abcdefghijklmnop",
            "card 4242-4242-4242-4242 declined",
            "password=hunter2hunter2",
            '{"refresh_token": "r3fr3sh-t0k3n-value"}',
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl",
        ],
    )
    def test_scrub_text_removes_secret(self, text: str) -> None:
        assert "[redacted]" in scrub_text(text)

    def test_scrub_text_keeps_non_card_number(self) -> None:
        assert scrub_text("load 1234567890123 moved") == "load 1234567890123 moved"


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25zb2xlLXRlc3QifQ.c2lnbmF0dXJlLWNvbnNvbGU"
BEARER = "Bearer console-bearer-token-9f8e7d"
LOGGED_PASSWORD = "console-pass-Xy71"
LOCAL_MARKER = "local-variable-value-Qw3"


def _fail_with_secrets() -> None:
    local_value = LOCAL_MARKER  # A rich traceback prints frame locals such as this one.
    raise RuntimeError(
        f"upstream refused {BEARER} token {JWT} password={LOGGED_PASSWORD} "
        f"card {CARD_NUMBER} ({len(local_value)})"
    )


class TestStdlibRecords:
    def test_logs_stdlib_message_is_scrubbed(self, captured_logs: CapturedLogs) -> None:
        logging.getLogger("httpx").info(
            "HTTP Request: %s %s", "GET", f"http://api.test/me?access_token={JWT}&pw=1"
        )

        [line] = [line for line in captured_logs.lines() if line["logger"] == "httpx"]
        assert line["event"] == "HTTP Request: GET http://api.test/me?access_token=[redacted]&pw=1"


class TestTimestamp:
    def test_logs_timestamp_is_utc_iso_with_microseconds(
        self, captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # 2026-12-05 02:30:07.000042 UTC: a fraction with leading zeros, where a
        # formatting slip would show.
        monkeypatch.setattr(time, "time_ns", lambda: 1796437807_000042_000)

        structlog.get_logger("test.timestamp").info("test.first")
        monkeypatch.setattr(time, "time_ns", lambda: 1796437808_500000_999)
        structlog.get_logger("test.timestamp").info("test.second")

        stamps = [line["timestamp"] for line in captured_logs.lines()]
        assert stamps == ["2026-12-05T02:30:07.000042Z", "2026-12-05T02:30:08.500000Z"]


class TestAccessLine:
    FIELDS: dict[str, Any] = {  # noqa: RUF012 - copied by each test
        "method": "GET",
        "route": "/loads/{load_id}",
        "status": 200,
        "duration_ms": 1.25,
    }

    @pytest.fixture
    def bound_context(self) -> Iterator[None]:
        with structlog.contextvars.bound_contextvars(
            request_id="a" * 32, api_token="bound-token-value-1", note=f"sent {BEARER}"
        ):
            yield

    def _both_renderings(self, captured_logs: CapturedLogs) -> tuple[list[Any], list[Any]]:
        structlog.get_logger("superior_one.access").info("http.request", **self.FIELDS)
        write_access_line(dict(self.FIELDS))
        chained, direct = captured_logs.events("http.request")
        del chained["timestamp"], direct["timestamp"]
        return list(chained.items()), list(direct.items())

    @pytest.mark.usefixtures("bound_context")
    def test_access_line_matches_chain(self, captured_logs: CapturedLogs) -> None:
        chained, direct = self._both_renderings(captured_logs)

        assert direct == chained
        assert dict(direct)["api_token"] == "[redacted]"
        assert BEARER not in str(direct)

    @pytest.mark.usefixtures("bound_context")
    def test_access_line_matches_chain_in_span(
        self, captured_logs: CapturedLogs, span_exporter: InMemorySpanExporter
    ) -> None:
        tracing = current_tracing()
        assert tracing is not None
        with tracing.tracer.start_as_current_span("test.request"):
            chained, direct = self._both_renderings(captured_logs)

        assert direct == chained
        assert {"trace_id", "span_id"} <= dict(direct).keys()

    def test_access_line_dropped_above_info(self, captured_logs: CapturedLogs) -> None:
        configure_logging(level="WARNING", json=True, stream=captured_logs.stream)

        write_access_line(dict(self.FIELDS))

        assert captured_logs.text == ""

    def test_access_line_console_mode(self, console_logs: io.StringIO) -> None:
        write_access_line(dict(self.FIELDS))

        assert "http.request" in console_logs.getvalue()
        assert "route=/loads/{load_id}" in console_logs.getvalue()


class TestBoundContext:
    def test_bound_vars_dict_exists(self) -> None:
        # merge_bound_context reads this private dict. Without it the public,
        # slower functions run, so a failure here means only the fast path is gone.
        assert isinstance(structlog.contextvars._CONTEXT_VARS, dict)

    def test_clear_unbinds_every_key(self) -> None:
        structlog.contextvars.bind_contextvars(request_id="r" * 32, job_id=7)

        clear_bound_context()

        assert structlog.contextvars.get_contextvars() == {}
        assert merge_bound_context(None, "info", {}) == {}

    def test_merge_keeps_event_value(self) -> None:
        with structlog.contextvars.bound_contextvars(request_id="r" * 32, route="/bound"):
            event = merge_bound_context(None, "info", {"route": "/given"})

        assert event == {"route": "/given", "request_id": "r" * 32}


class TestConsoleRenderer:
    SECRETS = (JWT, BEARER.split()[1], LOGGED_PASSWORD, CARD_NUMBER)

    @pytest.mark.parametrize(
        "log_failure",
        [
            lambda: structlog.get_logger("test.console").exception("test.failed"),
            lambda: logging.getLogger("test.console").exception("third-party failure"),
        ],
        ids=["structlog", "stdlib"],
    )
    def test_console_traceback_is_scrubbed(
        self, console_logs: io.StringIO, log_failure: Callable[[], None]
    ) -> None:
        try:
            _fail_with_secrets()
        except RuntimeError:
            log_failure()

        text = console_logs.getvalue()
        assert "Traceback (most recent call last)" in text
        assert [s for s in self.SECRETS if s in text] == []

    def test_console_traceback_has_no_locals(self, console_logs: io.StringIO) -> None:
        try:
            _fail_with_secrets()
        except RuntimeError:
            structlog.get_logger("test.console").exception("test.failed")

        text = console_logs.getvalue()
        assert "_fail_with_secrets" in text
        assert LOCAL_MARKER not in text


class TestBoundContextThreads:
    KEYS = 2000

    def test_merge_survives_keys_bound_by_other_threads(self) -> None:
        # Binding a key for the first time adds it to structlog's shared registry,
        # which merge_bound_context reads.
        names = [f"thread_key_{uuid.uuid4().hex[:8]}_{index}" for index in range(self.KEYS)]
        registry = structlog.contextvars._CONTEXT_VARS
        done = threading.Event()

        def bind_new_keys() -> None:
            for name in names:
                structlog.contextvars.bind_contextvars(**{name: 1})
            done.set()

        binder = threading.Thread(target=bind_new_keys)
        errors: list[BaseException] = []
        # Switch threads as often as possible, so the binder runs inside the loops.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            with structlog.contextvars.bound_contextvars(request_id="t" * 32):
                binder.start()
                while not done.is_set():
                    try:
                        event = merge_bound_context(None, "info", {})
                    except RuntimeError as exc:
                        errors.append(exc)
                        break
                    assert event["request_id"] == "t" * 32
        finally:
            binder.join()
            sys.setswitchinterval(switch_interval)
            for name in names:
                registry.pop(f"structlog_{name}", None)

        assert errors == []
