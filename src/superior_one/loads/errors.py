"""Errors of the loads domain, each with its own code so clients can tell them apart."""

from __future__ import annotations

from superior_one.errors import (
    AppError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)


class LoadNotFoundError(NotFoundError):
    # Also raised for another tenant's load: a probe cannot tell "not yours" from "absent".
    code = "load_not_found"


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"
    title = "Status change not allowed"


class LoadNotEditableError(ConflictError):
    code = "load_not_editable"


class InterestNotFoundError(NotFoundError):
    code = "interest_not_found"


class CarrierNotEligibleError(ConflictError):
    code = "carrier_not_eligible"
    title = "Carrier not eligible"


class DriverNotFoundError(NotFoundError):
    code = "driver_not_found"


class DriverBusyError(ConflictError):
    code = "driver_busy"
    title = "Driver already on a load"


class LoadRoleError(PermissionDeniedError):
    code = "load_action_forbidden"


class InvalidCursorError(UnprocessableError):
    code = "invalid_cursor"
    title = "Invalid cursor"


class InvalidLoadError(AppError):
    """A rule over several fields failed; ``errors`` lists each field like a 422 does."""

    status = 422
    code = "validation_failed"
    title = "Request validation failed"
