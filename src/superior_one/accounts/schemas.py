from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AliasChoices, EmailStr, Field, model_validator

from superior_one.accounts.models import OrganizationType, Role
from superior_one.schemas import RequestSchema, Schema


class OrganizationCreate(RequestSchema):
    name: str = Field(min_length=2, max_length=200)
    type: OrganizationType

    @model_validator(mode="after")
    def _not_platform(self) -> OrganizationCreate:
        if self.type is OrganizationType.PLATFORM:
            raise ValueError("type must be SHIPPER, CARRIER or BROKER")
        return self


class OrganizationUpdate(RequestSchema):
    # Older clients send snake_case ("is_active"); both spellings are accepted.
    is_active: bool | None = Field(
        default=None, validation_alias=AliasChoices("isActive", "is_active")
    )
    is_verified: bool | None = Field(
        default=None, validation_alias=AliasChoices("isVerified", "is_verified")
    )


class OrganizationOut(Schema):
    id: uuid.UUID
    name: str
    type: OrganizationType
    is_active: bool
    is_verified: bool
    created_at: datetime


class InvitationCreate(RequestSchema):
    email: EmailStr
    role: Role
    full_name: str = Field(default="", max_length=200)


class InvitationOut(Schema):
    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    # Null when the administrator gave no name, which the table stores as "".
    full_name: str | None
    role: Role
    expires_at: datetime
    # Shown once. NOTE: production would e-mail it; no mail sender exists yet.
    token: str


class InvitationAccept(RequestSchema):
    token: str = Field(min_length=10, max_length=512)
    password: str = Field(min_length=12, max_length=1024)
    full_name: str = Field(default="", max_length=200)


class UserUpdate(RequestSchema):
    is_active: bool | None = Field(
        default=None, validation_alias=AliasChoices("isActive", "is_active")
    )
    role: Role | None = None


class UserOut(Schema):
    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: datetime
