"""The FastAPI application factory and the api process's lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from superior_one.accounts.endpoints import router as accounts_router
from superior_one.apidocs import router as docs_router
from superior_one.auth.endpoints import router as auth_router
from superior_one.auth.passwords import PasswordService
from superior_one.auth.principal import PrincipalCache
from superior_one.auth.rate_limit import LoginRateLimiter
from superior_one.auth.tokens import AccessTokenVerifier
from superior_one.carriers.endpoints import router as carriers_router
from superior_one.carriers.service import load_eligibility_check
from superior_one.config import Settings, get_settings
from superior_one.errors import install_error_handlers
from superior_one.health import router as health_router
from superior_one.loads.endpoints import router as loads_router
from superior_one.loads.service import LoadsRuntime
from superior_one.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from superior_one.migrate import migration_heads
from superior_one.observability import setup_observability
from superior_one.observability.endpoints import router as metrics_router
from superior_one.observability.logging import configure_logging
from superior_one.observability.metrics import MetricsFlusher, mark_process_dead
from superior_one.payments.endpoints import router as payments_router
from superior_one.payments.runtime import PaymentsRuntime
from superior_one.resources import Resources
from superior_one.tracking.endpoints import router as tracking_router
from superior_one.tracking.fraud import check_manual_transition
from superior_one.tracking.ingest import TrackingRuntime

log = structlog.get_logger(__name__)

# Routes are matched in this order, one by one: the GPS ingest routes (tracking),
# the busiest by far, come first.
ROUTERS = [
    tracking_router,
    health_router,
    metrics_router,
    auth_router,
    accounts_router,
    loads_router,
    docs_router,
    carriers_router,
    payments_router,
]

# Section order of the API documentation, independent of the matching order above.
DOCUMENTATION_TAGS = (
    "auth",
    "accounts",
    "loads",
    "carriers",
    "tracking",
    "payments",
    "webhooks",
    "health",
    "operations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the api application; resources open in its lifespan, not here."""
    settings = settings or get_settings()
    # Server workers are separate processes that never ran the CLI's set-up.
    configure_logging(level=settings.log_level, json=settings.log_json)
    # Before the resources open: the engine and Redis client are traced from creation.
    tracing = setup_observability(settings, service_name="superior-one-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources.open(settings)
        state = app.state
        state.resources = resources
        state.engine = resources.engine
        state.sessionmaker = resources.sessionmaker
        state.redis = resources.redis
        state.migration_heads = migration_heads()
        state.passwords = PasswordService(settings)
        state.login_limiter = LoginRateLimiter(settings, resources.limits_storage)
        state.principal_cache = PrincipalCache(settings, resources.redis, resources.sessionmaker)
        state.principal_cache.start()
        state.token_verifier = AccessTokenVerifier(settings)
        # Loads: the board's Redis result cache and the equipment reference data.
        state.loads = LoadsRuntime.create(settings, resources.redis)
        # Carrier vetting refuses ineligible carriers when a load is assigned.
        state.carrier_eligibility = load_eligibility_check(settings)
        # Tracking: the GPS stream writer and load cache of ingest; the
        # double-brokering check after manual status changes.
        state.tracking = TrackingRuntime.create(settings, resources.redis, resources.sessionmaker)
        state.load_transition_check = check_manual_transition
        # Payments: the provider client (Stripe, or the local simulator by URL).
        state.payments = PaymentsRuntime.create(settings, resources.redis)
        # Objects alive now (modules, settings, pools) live as long as the process:
        # out of the collector's generations, full collections stop walking them.
        gc.freeze()
        metrics_flusher = MetricsFlusher() if settings.metrics_enabled else None
        state.metrics_flusher = metrics_flusher
        if metrics_flusher is not None:
            metrics_flusher.start()
        log.info("api.started", environment=settings.environment)
        try:
            yield
        finally:
            if metrics_flusher is not None:
                metrics_flusher.stop()
            await state.principal_cache.stop()
            await state.payments.aclose()
            await resources.close()
            if tracing is not None:
                tracing.force_flush()
            mark_process_dead()
            log.info("api.stopped")

    app = FastAPI(
        title="Superior One Logistics API",
        version="0.1.0",
        lifespan=lifespan,
        openapi_tags=[{"name": name} for name in DOCUMENTATION_TAGS],
        # Served by superior_one.apidocs with local assets instead of a CDN.
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry support turns on by itself once a global tracer
        # provider exists: a second server span and three operation spans per
        # request, five spans where one is needed. The tracing module's middleware
        # and the SQLAlchemy, Redis and httpx instrumentation cover what operators use.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    # Added last means outermost: the request id exists before anything else runs.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=settings.metrics_enabled)
    if tracing is not None:
        tracing.instrument_app(app)
    return app
