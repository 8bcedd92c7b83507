from __future__ import annotations

from superior_one.errors import AppError, ConflictError, NotFoundError, PermissionDeniedError


class OrganizationNotFoundError(NotFoundError):
    code = "organization_not_found"


class UserNotFoundError(NotFoundError):
    code = "user_not_found"


class InvitationInvalidError(AppError):
    status = 400
    code = "invitation_invalid"
    title = "Invitation invalid"


class RoleNotAssignableError(PermissionDeniedError):
    code = "role_not_assignable"


class SelfLockoutError(ConflictError):
    code = "self_lockout"


class EmailInUseError(ConflictError):
    code = "email_in_use"
