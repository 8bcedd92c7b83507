"""Settings read from the environment (prefix ``SO_``) and from ``.env``.

Every variable is documented in ``.env.example``; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    # JSON logs when true; the console renderer is easier to read on a terminal.
    log_json: bool = False

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

    # Demo account printed by the run command.
    demo_password: SecretStr = SecretStr("demo-password-2026")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
