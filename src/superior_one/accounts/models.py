"""Organizations and their users."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from superior_one.db import Base, TimestampMixin


class OrganizationType(enum.StrEnum):
    PLATFORM = "PLATFORM"
    SHIPPER = "SHIPPER"
    CARRIER = "CARRIER"
    BROKER = "BROKER"


class Role(enum.StrEnum):
    PLATFORM_ADMIN = "PLATFORM_ADMIN"
    ORG_ADMIN = "ORG_ADMIN"
    DISPATCHER = "DISPATCHER"
    DRIVER = "DRIVER"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as text with a CHECK constraint: adding a value is a one-line migration,
    # unlike a native PostgreSQL enum type.
    return Enum(cls, name=name, native_enum=False, length=32, validate_strings=True)


class Organization(TimestampMixin, Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[OrganizationType] = mapped_column(
        _enum(OrganizationType, "organization_type"), nullable=False
    )
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    is_verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    # Stored lower-cased; the unique index makes the address the login name.
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # Every access and refresh token carries the version it was issued under; bumping
    # it revokes them all (deactivation, role change, logout everywhere).
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Invitation(TimestampMixin, Base):
    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    # The name the administrator gave, used when the invitee accepts without one.
    full_name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "invitation_role"), nullable=False)
    # SHA-256 of the opaque invitation token; the token itself is shown once.
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    invited_by_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
