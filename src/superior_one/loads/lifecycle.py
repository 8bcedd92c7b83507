"""The load lifecycle: allowed status changes, and the one function that applies them.

Every status change in the code base goes through :func:`transition_load`, from a
request, a job, a CLI command or the GPS consumer. It applies the change as a
conditional ``UPDATE ... WHERE status = <the status it read>``: of two
concurrent transitions on one load, the second one's update waits for the
first to commit, then matches no row and fails with 409 (or, for an idempotent
caller such as a GPS consumer that sees the same geofence event twice, reports
``applied=False``). Each applied change writes one ``load_events`` row in the
same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.db import after_commit
from superior_one.loads.errors import InvalidTransitionError, LoadNotFoundError
from superior_one.loads.models import ActorKind, Load, LoadEvent, LoadStatus
from superior_one.observability import metrics

if TYPE_CHECKING:
    from superior_one.auth.principal import Principal
    from superior_one.loads.cache import BoardCache

log = structlog.get_logger(__name__)

S = LoadStatus
ALLOWED_TRANSITIONS: Mapping[LoadStatus, frozenset[LoadStatus]] = {
    S.DRAFT: frozenset({S.POSTED, S.CANCELLED}),
    S.POSTED: frozenset({S.ASSIGNED, S.CANCELLED, S.EXPIRED}),
    S.ASSIGNED: frozenset({S.RELEASED, S.CANCELLED}),
    S.RELEASED: frozenset({S.IN_TRANSIT, S.CANCELLED}),
    S.IN_TRANSIT: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
}

# The column stamped with the time a load reached each status.
_STATUS_TIMESTAMP = {
    S.POSTED: "posted_at",
    S.ASSIGNED: "assigned_at",
    S.RELEASED: "released_at",
    S.IN_TRANSIT: "picked_up_at",
    S.DELIVERED: "delivered_at",
    S.COMPLETED: "completed_at",
    S.CANCELLED: "cancelled_at",
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who or what causes a transition, as recorded in ``load_events``."""

    kind: ActorKind
    description: str
    user_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None

    @classmethod
    def from_principal(cls, principal: Principal) -> Actor:
        return cls(
            kind=ActorKind.USER,
            description=f"{principal.organization_type.value.lower()} {principal.role.value}",
            user_id=principal.user_id,
            organization_id=principal.organization_id,
        )

    @classmethod
    def system(cls, description: str) -> Actor:
        return cls(kind=ActorKind.SYSTEM, description=description)

    @classmethod
    def gps(cls, description: str) -> Actor:
        return cls(kind=ActorKind.GPS, description=description)


@dataclass(frozen=True, slots=True)
class TransitionResult:
    load_id: uuid.UUID
    from_status: LoadStatus
    to_status: LoadStatus
    applied: bool
    event_id: int | None


def can_transition(current: LoadStatus, requested: LoadStatus) -> bool:
    return requested in ALLOWED_TRANSITIONS[current]


def affects_board(from_status: LoadStatus, to_status: LoadStatus) -> bool:
    """Return whether the change adds a load to the board or removes one from it."""
    return S.POSTED in (from_status, to_status)


def _transition_error(
    load_id: uuid.UUID, current: LoadStatus, requested: LoadStatus
) -> InvalidTransitionError:
    allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none (final status)"
    return InvalidTransitionError(
        f"Load {load_id} is {current}; it cannot become {requested}. "
        f"From {current} it can become: {allowed}.",
        currentStatus=current.value,
        requestedStatus=requested.value,
    )


async def transition_load(
    session: AsyncSession,
    load_id: uuid.UUID,
    to_status: LoadStatus,
    actor: Actor,
    *,
    reason: str | None = None,
    gps_fix_id: int | None = None,
    expected_from: Collection[LoadStatus] | None = None,
    changes: Mapping[str, Any] | None = None,
    idempotent: bool = False,
    board_cache: BoardCache | None = None,
) -> TransitionResult:
    """Move a load to ``to_status`` if the state machine allows it; flush, never commit.

    ``expected_from`` narrows the statuses this caller may start from (a
    geofence departure only moves a RELEASED load). ``changes`` are extra
    column values written by the same UPDATE (the assigned carrier). With
    ``idempotent=True`` a load that is already in ``to_status`` returns
    ``applied=False`` instead of raising, so a consumer that processes a fix
    twice applies its transition once. ``board_cache`` is invalidated after
    commit when the load enters or leaves the board; callers that can post,
    assign, cancel or expire a load must pass it.

    Raises :class:`LoadNotFoundError` when the load does not exist and
    :class:`InvalidTransitionError` (409) naming the current and requested
    status when the change is not allowed or another transaction won.
    """
    current = (
        await session.execute(select(Load.status).where(Load.id == load_id))
    ).scalar_one_or_none()
    if current is None:
        raise LoadNotFoundError(f"Load {load_id} does not exist.")
    if idempotent and current == to_status:
        return TransitionResult(load_id, current, to_status, applied=False, event_id=None)
    if not can_transition(current, to_status) or (
        expected_from is not None and current not in expected_from
    ):
        raise _transition_error(load_id, current, to_status)

    values: dict[str, Any] = {"status": to_status, "updated_at": func.now(), **(changes or {})}
    if stamp := _STATUS_TIMESTAMP.get(to_status):
        values[stamp] = func.now()
    # The WHERE on the status read above is the concurrency guard: a concurrent
    # transition that committed first makes this match no row.
    updated = (
        await session.execute(
            update(Load)
            .where(Load.id == load_id, Load.status == current)
            .values(values)
            .returning(Load.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if updated is None:
        now_status = (
            await session.execute(select(Load.status).where(Load.id == load_id))
        ).scalar_one()
        if idempotent and now_status == to_status:
            return TransitionResult(load_id, now_status, to_status, applied=False, event_id=None)
        raise _transition_error(load_id, now_status, to_status)

    event_id = await record_event(
        session, load_id, current, to_status, actor, reason=reason, gps_fix_id=gps_fix_id
    )
    if board_cache is not None and affects_board(current, to_status):
        board_cache.invalidate_after_commit(session)
    await _count_after_commit(session, load_id, to_status)
    log.info(
        "load.status_changed",
        load_id=str(load_id),
        from_status=current.value,
        to_status=to_status.value,
        actor_kind=actor.kind.value,
        actor_user_id=str(actor.user_id) if actor.user_id else None,
        gps_fix_id=gps_fix_id,
    )
    return TransitionResult(load_id, current, to_status, applied=True, event_id=event_id)


async def _count_after_commit(
    session: AsyncSession, load_id: uuid.UUID, to_status: LoadStatus
) -> None:
    # Business counters move once the change commits: a rolled-back one never happened.
    if to_status is S.POSTED:
        counter = metrics.LOADS_POSTED
    elif to_status is S.ASSIGNED:
        counter = metrics.LOADS_ASSIGNED
    elif to_status is S.RELEASED:
        counter = metrics.LOADS_COVERED
    else:
        return
    time_to_cover_s: float | None = None
    if to_status is S.RELEASED:
        posted_at, released_at = (
            await session.execute(
                select(Load.posted_at, Load.released_at).where(Load.id == load_id)
            )
        ).one()
        if posted_at is not None and released_at is not None:
            time_to_cover_s = (released_at - posted_at).total_seconds()

    async def count() -> None:
        counter.inc()
        if time_to_cover_s is not None:
            metrics.LOAD_TIME_TO_COVER.observe(time_to_cover_s)

    after_commit(session, count)


async def record_event(
    session: AsyncSession,
    load_id: uuid.UUID,
    from_status: LoadStatus | None,
    to_status: LoadStatus,
    actor: Actor,
    *,
    reason: str | None = None,
    gps_fix_id: int | None = None,
    occurred_at: datetime | None = None,
) -> int:
    values: dict[str, Any] = {
        "load_id": load_id,
        "from_status": from_status,
        "to_status": to_status,
        "actor_kind": actor.kind,
        "actor_user_id": actor.user_id,
        "actor_organization_id": actor.organization_id,
        "actor_description": actor.description[:200],
        "reason": reason,
        "gps_fix_id": gps_fix_id,
    }
    if occurred_at is not None:
        values["occurred_at"] = occurred_at
    result = await session.execute(insert(LoadEvent).values(values).returning(LoadEvent.id))
    return int(result.scalar_one())
