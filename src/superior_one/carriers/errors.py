"""Errors of the carriers domain."""

from __future__ import annotations

from superior_one.errors import AppError, ConflictError, NotFoundError, PermissionDeniedError


class CarrierNotFoundError(NotFoundError):
    code = "carrier_not_found"
    title = "Carrier not found"


class CarrierAlreadyRegisteredError(ConflictError):
    code = "carrier_already_registered"
    title = "Carrier already registered"


class CarrierOrganizationRequiredError(PermissionDeniedError):
    code = "carrier_organization_required"
    title = "Carrier organization required"


class CarrierIneligibleError(AppError):
    """The carrier may not take this load; ``reasons`` lists every failed check."""

    status = 409
    code = "carrier_ineligible"
    title = "Carrier not eligible for this load"
