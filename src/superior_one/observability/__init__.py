"""Logs, metrics, traces and error reports shared by every process type.

Each process calls :func:`setup_observability` once at start-up, before it
opens its resources (the engine and Redis client are instrumented as they are
created): the api's factory does, and so do the worker and gps-consumer commands.
"""

from __future__ import annotations

from superior_one.config import Settings
from superior_one.observability.sentry import setup_sentry
from superior_one.observability.tracing import Tracing, setup_tracing


def setup_observability(settings: Settings, *, service_name: str) -> Tracing | None:
    """Start tracing and Sentry as configured (each at most once per process)."""
    setup_sentry(settings, service_name=service_name)
    return setup_tracing(settings, service_name=service_name)
