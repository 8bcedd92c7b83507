from __future__ import annotations

import uuid

from pydantic import EmailStr, Field

from superior_one.accounts.models import OrganizationType, Role
from superior_one.schemas import RequestSchema, Schema


class LoginRequest(RequestSchema):
    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(RequestSchema):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(RequestSchema):
    refresh_token: str | None = Field(default=None, max_length=512)
    all_sessions: bool = False


class TokenPair(Schema):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_in: int


class MeResponse(Schema):
    user_id: uuid.UUID
    email: str
    full_name: str
    role: Role
    organization_id: uuid.UUID
    organization_name: str
    organization_type: OrganizationType
    organization_verified: bool


class PrincipalOut(Schema):
    user_id: uuid.UUID
    organization_id: uuid.UUID
    organization_type: OrganizationType
    role: Role
