"""Settings read from the environment (prefix ``SO_``) and from dotenv files.

Every variable is documented in ``.env.example``; keep the two in step.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE_VARIABLE = "SO_ENV_FILE"


def env_files() -> tuple[Path, ...]:
    """Return the dotenv files settings are read from, the last one winning.

    The environment wins over them all. First the ``.env`` of the source checkout
    this package runs from (none when it is installed elsewhere), then the file
    named by ``SO_ENV_FILE``, which must exist. Never a ``.env`` in the working
    directory: a command started from another directory would silently use other
    settings, and another database.
    """
    files: list[Path] = []
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        files.append(checkout / ".env")
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named:
        path = Path(named).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_FILE_VARIABLE}={named}: no such file")
        files.append(path)
    return tuple(files)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SO_", env_file=env_files(), env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    # JSON logs when true; the console renderer is easier to read on a terminal.
    log_json: bool = False

    # Observability (superior_one.observability; docs/operations.md).
    # Prometheus metrics: /metrics on the api (optionally behind a bearer token)
    # and a port of their own for worker and gps-consumer processes (0: none).
    metrics_enabled: bool = True
    metrics_token: SecretStr = SecretStr("")
    metrics_address: str = "127.0.0.1"
    metrics_port_worker: int = Field(default=9101, ge=0, le=65535)
    metrics_port_gps_consumer: int = Field(default=9102, ge=0, le=65535)
    # Statements slower than this write one db.slow_query line (0: never).
    db_slow_query_ms: float = Field(default=250.0, ge=0)
    # OpenTelemetry traces, off by default. Without an endpoint, spans are made
    # (trace ids in logs and outgoing headers) but not exported.
    otel_enabled: bool = False
    otel_exporter_otlp_endpoint: str = ""
    otel_sample_ratio: float = Field(default=0.1, ge=0, le=1)
    # Error reports to Sentry; empty: off.
    sentry_dsn: SecretStr = SecretStr("")

    # Database: one SQLAlchemy async engine per process, driver psycopg 3.
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/superior_one"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_recycle_s: int = Field(default=1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    # None disables server-side prepared statements, which PgBouncer in
    # transaction mode requires.
    db_prepare_threshold: int | None = 5
    db_echo: bool = False

    # Redis: one client per process. Keys and pub/sub channels start with the
    # namespace, so several deployments (or test workers) can share one server.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = "so"
    redis_socket_timeout_s: float = Field(default=0.5, gt=0)
    redis_max_connections: int = Field(default=100, ge=1)

    # HTTP
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    cors_origins: list[str] = []

    # Tokens. HS256 is pinned: tokens with any other algorithm are rejected.
    jwt_secret: SecretStr = SecretStr("change-me-in-production-this-is-only-for-development")
    jwt_issuer: str = "superior-one"
    jwt_audience: str = "superior-one-api"
    access_token_ttl_s: int = Field(default=900, ge=30)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=300)
    invitation_ttl_s: int = Field(default=7 * 24 * 3600, ge=300)

    # Principal cache: Redis entry TTL and the in-process cache's TTL and size.
    principal_cache_ttl_s: int = Field(default=60, ge=1)
    principal_local_ttl_s: float = Field(default=30.0, ge=0)
    principal_local_max_entries: int = Field(default=10_000, ge=0)

    # Login attempts, counted in Redis per account and per client address.
    login_limit_per_account: str = "10/15 minutes"
    login_limit_per_address: str = "50/15 minutes"

    # argon2id cost. The defaults follow RFC 9106's second recommended option;
    # tests lower them to keep the suite fast.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)

    # Demo account printed by the run command.
    demo_password: SecretStr = SecretStr("demo-password-2026")

    # --- Payments ---------------------------------------------------------
    # Stripe secret key (sk_...). In development and tests, the local payment
    # provider simulator's key.
    stripe_secret_key: SecretStr = SecretStr("")
    # Base URL of the Stripe API; point it at the local simulator in
    # development and tests.
    stripe_api_base: str = "https://api.stripe.com"
    # Timeout of one Stripe HTTP request, in seconds. The SDK does not retry.
    stripe_timeout_s: float = Field(default=10.0, gt=0)
    # Webhook signing secrets (whsec_...), comma-separated: several while a
    # secret is being rotated. Empty rejects every webhook.
    stripe_webhook_secret: SecretStr = SecretStr("")
    # Maximum distance between a webhook's signed timestamp and the server clock.
    stripe_webhook_tolerance_s: int = Field(default=300, gt=0)
    # Platform fee, in percent of the gross charge, kept before the carrier
    # payout. Rounded half-up to whole cents (payments.money).
    platform_fee_percent: Decimal = Field(default=Decimal("3"), ge=0, lt=100)
    # Invoices: currency, and days from issue to due date (net terms).
    payments_currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    payments_net_terms_days: int = Field(default=30, ge=0, le=365)
    # Charge OPEN invoices automatically on their due date (periodic job).
    payments_auto_charge: bool = True
    # Retries of a soft-declined charge: hours after attempt 1, 2, ... failed.
    # Hard declines are never retried; after the last entry dunning stops.
    payments_dunning_retry_h: list[float] = [24.0, 72.0, 168.0]
    # An attempt whose outcome is still unknown after this many seconds is
    # settled by the reconciliation job, with the attempt's idempotency key.
    payments_reconcile_after_s: float = Field(default=60.0, gt=0)
    # Stripe may forget an idempotency key after 24 h: past this age the job
    # no longer resends the request and asks operations to check the attempt.
    payments_reconcile_max_age_h: float = Field(default=23.0, gt=0, le=24)
    # Idempotency-Key records (caller, request fingerprint, response) are kept
    # this long; at least 24 h, like the provider's own keys.
    payments_idempotency_ttl_h: int = Field(default=48, ge=24)
    # A request still RUNNING under a key after this many seconds is presumed
    # dead, and the next request with the key takes it over.
    payments_idempotency_lock_s: float = Field(default=60.0, gt=0)

    # GPS fix validation. Unset means the default in superior_one.tracking.rules,
    # where every tracking constant is documented.
    gps_max_fix_age_s: float | None = Field(default=None, gt=0)
    gps_future_skew_s: float | None = Field(default=None, ge=0)
    gps_max_implied_speed_mps: float | None = Field(default=None, gt=0)

    # FMCSA QCMobile. The base URL points at the local simulator in development
    # and tests. FMCSA publishes no rate limit, so the call budget (``limits``
    # notation, shared by every process through Redis) is our own choice.
    fmcsa_base_url: str = "https://mobile.fmcsa.dot.gov/qc/services"
    fmcsa_web_key: SecretStr = SecretStr("")
    fmcsa_connect_timeout_s: float = Field(default=3.0, gt=0)
    fmcsa_read_timeout_s: float = Field(default=10.0, gt=0)
    fmcsa_call_budget: str = "10/minute"
    fmcsa_budget_max_wait_s: float = Field(default=5.0, ge=0)
    fmcsa_budget_margin_s: int = Field(default=1, ge=0)
    fmcsa_retry_attempts: int = Field(default=3, ge=1)
    fmcsa_retry_initial_s: float = Field(default=0.5, ge=0)
    fmcsa_retry_max_s: float = Field(default=8.0, ge=0)
    fmcsa_breaker_threshold: int = Field(default=5, ge=1)
    fmcsa_breaker_reset_s: float = Field(default=60.0, gt=0)
    fmcsa_cache_fresh_s: int = Field(default=3600, ge=0)
    fmcsa_cache_retention_s: int = Field(default=90 * 24 * 3600, ge=60)
    # Stripe's breaker: consecutive unavailable responses (timeouts, connection
    # errors, 5xx, 429) that open it, and seconds until a trial call is allowed.
    # Declines and other 4xx responses never count.
    stripe_breaker_threshold: int = Field(default=5, ge=1)
    stripe_breaker_reset_s: float = Field(default=30.0, gt=0)

    # Background jobs (Procrastinate, in PostgreSQL). The worker fetches jobs
    # through a small psycopg pool of its own (superior_one.db.create_job_queue_pool);
    # set jobs_database_url to reach PostgreSQL directly when the main URL goes
    # through PgBouncer in transaction mode, which drops LISTEN.
    jobs_database_url: str | None = None
    jobs_concurrency: int = Field(default=10, ge=1)
    # Transient failures are retried after a random delay in
    # [0, min(cap, base * 2**attempt)] seconds ("full jitter").
    jobs_retry_max_attempts: int = Field(default=8, ge=1)
    jobs_retry_base_s: float = Field(default=2.0, gt=0)
    jobs_retry_cap_s: float = Field(default=1800.0, gt=0)
    # A job whose worker sent no heartbeat for jobs_stalled_after_s is run again;
    # the check runs on jobs_stalled_check_cron (six fields: the last is seconds).
    jobs_heartbeat_s: float = Field(default=10.0, gt=0)
    jobs_stalled_after_s: float = Field(default=60.0, gt=0)
    jobs_stalled_check_cron: str = "* * * * * */30"
    # Periodic ticks missed by more than this (all workers down) are skipped.
    jobs_periodic_max_delay_s: float = Field(default=600.0, ge=0)
    jobs_keep_succeeded_h: int = Field(default=72, ge=1)
    # Extra modules holding tasks, imported by the worker (tests, plug-ins).
    jobs_extra_import_paths: list[str] = []

    # Carriers: vetting, insurance and scores. Dates such as "expires in 7 days"
    # are counted in the business time zone.
    carriers_business_time_zone: str = "America/Chicago"
    carriers_batch_size: int = Field(default=500, ge=1)
    carriers_expiry_notice_days: list[int] = [30, 15, 7]
    carriers_reverify_interval_days: int = Field(default=7, ge=1)
    # A verification older than this no longer makes a carrier eligible.
    carriers_verification_max_age_days: int = Field(default=14, ge=1)

    # Load board. Result pages are cached in Redis for board_cache_ttl_s (0
    # disables the cache) and invalidated when a posted load changes; after a
    # Redis failure a process skips the cache for board_cache_retry_s. Legacy
    # "page" numbers are mapped to cursors remembered for board_page_anchor_ttl_s.
    board_cache_ttl_s: int = Field(default=10, ge=0)
    board_cache_retry_s: float = Field(default=5.0, ge=0)
    board_page_anchor_ttl_s: int = Field(default=600, ge=1)
    board_default_page_size: int = Field(default=25, ge=1)
    board_max_page_size: int = Field(default=100, ge=1)
    # Totals are exact up to this many matches, then reported as "at least".
    board_count_cap: int = Field(default=500, ge=1)
    board_max_radius_mi: float = Field(default=500.0, gt=0)

    # GPS tracking: ingest, the stream, the gps-consumer and geo_events storage
    # (superior_one.tracking; geofence constants live in tracking/rules.py).
    # Redis keeps each driver's most recent fixes for duplicate and jump checks.
    gps_recent_fixes_per_driver: int = Field(default=240, ge=1)
    # Seconds an api process trusts what it read about a load (its carrier and driver).
    # Longer than workers x ping interval, or a truck's pings keep missing the cache.
    gps_load_cache_ttl_s: float = Field(default=300.0, ge=0)
    gps_consumer_group: str = "gps-consumers"
    # Stream entries (one per request, up to 500 fixes each) read per batch.
    gps_consumer_batch_entries: int = Field(default=200, ge=1)
    gps_consumer_block_ms: int = Field(default=1000, ge=1)
    # After a batch smaller than a full one, the consumer waits this long before
    # reading again. Fixes then come in fewer, larger batches, which share each
    # batch's fixed costs (a transaction, lookups, acknowledgements). Adds up to
    # this much lag.
    gps_consumer_linger_ms: int = Field(default=200, ge=0)
    # Entries another consumer read but has not acknowledged for this long are
    # claimed (that consumer is taken for dead); checked every claim interval.
    gps_consumer_claim_idle_s: float = Field(default=30.0, gt=0)
    gps_consumer_claim_interval_s: float = Field(default=5.0, gt=0)
    # How often fixes written straight to PostgreSQL (Redis was down) are evaluated.
    gps_consumer_sweep_interval_s: float = Field(default=2.0, gt=0)
    # geo_events partitions: one per UTC day, created this many days ahead and
    # dropped once all their fixes are older than the retention.
    gps_partitions_ahead_days: int = Field(default=7, ge=1)
    gps_retention_days: int = Field(default=90, ge=4)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
