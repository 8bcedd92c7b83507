"""``Idempotency-Key`` for the payments API's POST requests.

A caller (an organization) sends a key of its choosing with each POST that has
effects. The key is stored with the caller, a fingerprint of the request
(method, path and the body's JSON, key order and spacing aside) and, once the
request finished, the response:

* a retry with the same key and the same request gets the stored response
  (``Idempotent-Replayed: true``) and nothing runs again;
* the same key with another request gets 422 and nothing runs;
* the same key while the first request still runs gets 409; retry later.

The key is claimed in a short transaction of its own, committed before the
work starts, so a concurrent duplicate finds it at once. Responses of 2xx and
of the business rules (4xx) are stored; after an unexpected error the claim is
released so the request can be retried. A RUNNING claim older than
``payments_idempotency_lock_s`` belongs to a request that died, and the next
request with the key takes it over. Records are kept for
``payments_idempotency_ttl_h`` (at least 24 h), then purged by a job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.auth.principal import Principal
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.errors import PROBLEM_CONTENT_TYPE, AppError, problem_response
from superior_one.payments.errors import (
    IdempotencyKeyInProgressError,
    IdempotencyKeyInvalidError,
    IdempotencyKeyMissingError,
    IdempotencyKeyReusedError,
)
from superior_one.payments.models import IdempotencyRecord, IdempotencyState

log = structlog.get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Printable ASCII without spaces: UUIDs, ULIDs and "order-42-charge" all fit.
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
IN_PROGRESS_RETRY_AFTER_S = 1

# The result of an idempotent operation: the status and the JSON body to send.
Outcome = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class _Claim:
    replay: IdempotencyRecord | None


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, path and body; JSON bodies are compared by content."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = b"raw:" + body
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\n")
    digest.update(path.encode())
    digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()


def validate_key(key: str | None) -> str:
    if key is None or key == "":
        raise IdempotencyKeyMissingError(
            f"This request has effects: send an '{HEADER}' header with a unique value "
            "(a UUID) and reuse it when you retry the same request."
        )
    if not _KEY.fullmatch(key):
        raise IdempotencyKeyInvalidError(
            f"The '{HEADER}' header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "without spaces, such as a UUID."
        )
    return key


async def _claim(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
) -> _Claim:
    now = datetime.now(UTC)
    locked_until = now + timedelta(seconds=settings.payments_idempotency_lock_s)
    expires_at = now + timedelta(hours=settings.payments_idempotency_ttl_h)
    fresh = {
        "user_id": principal.user_id,
        "method": method,
        "path": path[:500],
        "fingerprint": fingerprint,
        "state": IdempotencyState.RUNNING,
        "response_status": None,
        "response_body": None,
        "created_at": now,
        "locked_until": locked_until,
        "completed_at": None,
        "expires_at": expires_at,
    }
    inserted = (
        await session.execute(
            insert(IdempotencyRecord)
            .values(organization_id=principal.organization_id, key=key, **fresh)
            .on_conflict_do_nothing(
                index_elements=[IdempotencyRecord.organization_id, IdempotencyRecord.key]
            )
            .returning(IdempotencyRecord.key)
        )
    ).scalar_one_or_none()
    if inserted is not None:
        return _Claim(replay=None)

    record = (
        await session.execute(
            select(IdempotencyRecord)
            .where(
                IdempotencyRecord.organization_id == principal.organization_id,
                IdempotencyRecord.key == key,
            )
            .with_for_update()
        )
    ).scalar_one()

    if record.expires_at <= now:
        await _overwrite(session, principal, key, fresh)
        return _Claim(replay=None)
    if (record.method, record.path, record.fingerprint) != (method, path[:500], fingerprint):
        raise IdempotencyKeyReusedError(
            f"The {HEADER} '{key}' was first used with a different request "
            f"({record.method} {record.path} with another body). Use a new key for a new "
            "request; reuse a key only to retry exactly the same request.",
            firstRequest=f"{record.method} {record.path}",
        )
    if record.state is IdempotencyState.COMPLETED:
        return _Claim(replay=record)
    if record.locked_until > now:
        raise IdempotencyKeyInProgressError(
            f"A request with the {HEADER} '{key}' is still running. Retry in a moment with "
            "the same key to receive its response.",
            headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_S)},
        )
    log.warning(
        "payments.idempotency_key_taken_over", organization_id=str(principal.organization_id)
    )
    await _overwrite(session, principal, key, fresh)
    return _Claim(replay=None)


async def _overwrite(
    session: AsyncSession, principal: Principal, key: str, values: dict[str, object]
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.organization_id == principal.organization_id,
            IdempotencyRecord.key == key,
        )
        .values(values)
    )


async def _complete(
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    key: str,
    status: int,
    body: bytes,
) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.organization_id == principal.organization_id,
                IdempotencyRecord.key == key,
            )
            .values(
                state=IdempotencyState.COMPLETED,
                response_status=status,
                response_body=body,
                completed_at=datetime.now(UTC),
            )
        )


async def _release(
    sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, key: str
) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.organization_id == principal.organization_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.state == IdempotencyState.RUNNING,
            )
        )


async def run_idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    operation: Callable[[], Awaitable[Outcome]],
    *,
    extra_headers: Callable[[], dict[str, str]] | None = None,
) -> Response:
    """Run ``operation`` at most once per (caller, key) and return its stored response.

    ``operation`` does its own transactions (it may call the provider between
    them) and returns the status and JSON body. An :class:`AppError` it raises
    is rendered, stored and returned like a response.
    """
    settings: Settings = request.app.state.settings
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    key = validate_key(key)
    body = await request.body()
    method, path = request.method, request.url.path
    fingerprint = request_fingerprint(method, path, body)

    async with unit_of_work(sessionmaker) as session:
        claim = await _claim(session, settings, principal, key, method, path, fingerprint)
    if claim.replay is not None:
        assert claim.replay.response_status is not None
        return Response(
            claim.replay.response_body or b"",
            status_code=claim.replay.response_status,
            media_type=_media_type(claim.replay.response_status),
            headers={REPLAYED_HEADER: "true"},
        )

    try:
        status, payload = await operation()
        media_type = "application/json"
    except AppError as exc:
        if exc.status >= 500:
            await _release(sessionmaker, principal, key)
            raise
        rendered = _render_error(request, exc)
        status, payload, media_type = (
            rendered.status_code,
            bytes(rendered.body),
            PROBLEM_CONTENT_TYPE,
        )
    except BaseException:
        await _release(sessionmaker, principal, key)
        raise

    await _complete(sessionmaker, principal, key, status, payload)
    headers = extra_headers() if extra_headers is not None else {}
    return Response(payload, status_code=status, media_type=media_type, headers=headers)


def _render_error(request: Request, exc: AppError) -> Response:
    extra = dict(exc.extra)
    headers = extra.pop("headers", None)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=headers,
        **extra,
    )


def _media_type(status: int) -> str:
    return "application/json" if status < 400 else PROBLEM_CONTENT_TYPE


async def purge_expired(session: AsyncSession, *, limit: int = 5000) -> int:
    """Delete up to ``limit`` expired records; return how many."""
    result = await session.execute(
        text(
            "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
            "WHERE expires_at < now() LIMIT :limit)"
        ),
        {"limit": limit},
    )
    return int(getattr(result, "rowcount", 0) or 0)
