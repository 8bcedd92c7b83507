"""The audit trail of payment actions: who or what, from which request or job.

Every action that changes an invoice, attempt or payout writes one row of
``payment_audit_log`` in the transaction of the change itself, so the trail
and the state never disagree. Details hold ids, statuses, amounts and provider
codes only: never card data, secrets or request bodies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.auth.principal import Principal
from superior_one.payments.models import ActorKind, PaymentAuditEntry


@dataclass(frozen=True, slots=True)
class AuditActor:
    kind: ActorKind
    description: str
    user_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    request_id: str | None = None
    job_id: int | None = None

    @classmethod
    def from_principal(cls, principal: Principal, request_id: str | None) -> AuditActor:
        return cls(
            kind=ActorKind.USER,
            description=f"{principal.organization_type.value.lower()} {principal.role.value}",
            user_id=principal.user_id,
            organization_id=principal.organization_id,
            request_id=request_id,
        )

    @classmethod
    def system(cls, description: str) -> AuditActor:
        """Build the actor of a job or command, with the job and request ids of the log context."""
        context = structlog.contextvars.get_contextvars()
        job_id = context.get("job_id")
        request_id = context.get("request_id")
        return cls(
            kind=ActorKind.SYSTEM,
            description=description,
            request_id=str(request_id) if request_id is not None else None,
            job_id=int(job_id) if isinstance(job_id, int) else None,
        )

    @classmethod
    def provider(cls, event_id: str, request_id: str | None) -> AuditActor:
        context = structlog.contextvars.get_contextvars()
        job_id = context.get("job_id")
        return cls(
            kind=ActorKind.PROVIDER,
            description=f"stripe event {event_id}"[:200],
            request_id=request_id,
            job_id=int(job_id) if isinstance(job_id, int) else None,
        )

    def with_description(self, description: str) -> AuditActor:
        return replace(self, description=description)


async def record(
    session: AsyncSession,
    actor: AuditActor,
    action: str,
    *,
    invoice_id: uuid.UUID | None = None,
    payout_id: uuid.UUID | None = None,
    attempt_id: uuid.UUID | None = None,
    **details: Any,
) -> None:
    """Append one audit row in ``session``'s transaction."""
    await session.execute(
        insert(PaymentAuditEntry).values(
            action=action,
            actor_kind=actor.kind,
            actor_user_id=actor.user_id,
            actor_organization_id=actor.organization_id,
            actor_description=actor.description[:200],
            request_id=actor.request_id[:64] if actor.request_id else None,
            job_id=actor.job_id,
            invoice_id=invoice_id,
            payout_id=payout_id,
            attempt_id=attempt_id,
            details={k: _plain(v) for k, v in details.items()},
        )
    )


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
