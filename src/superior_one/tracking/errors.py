"""Errors of the tracking domain, each with its own code."""

from __future__ import annotations

from superior_one.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)


class TrackedLoadNotFoundError(NotFoundError):
    # Also raised for another tenant's load: a probe cannot tell "not yours" from "absent".
    code = "load_not_found"


class CarrierNotFoundError(NotFoundError):
    # Also raised for another carrier's fleet, for the same reason.
    code = "carrier_not_found"


class UnauthorizedSenderError(PermissionDeniedError):
    """Fixes for a load from someone who is neither its driver nor its carrier's
    dispatcher. The attempt is recorded as a fraud signal, so the request's
    writes commit even though it fails."""

    code = "not_the_assigned_driver"
    title = "Not the load's driver"
    keep_changes = True


class LoadNotTrackableError(ConflictError):
    code = "load_not_trackable"
    title = "Load not in transit"


class FixRejectedError(UnprocessableError):
    """The one fix of a single-ping request failed validation."""

    code = "fix_rejected"
    title = "GPS fix rejected"


class NoNextStopError(ConflictError):
    code = "no_next_stop"
    title = "No stop ahead"


class NoFixYetError(NotFoundError):
    code = "no_fix_yet"
    title = "No position yet"


class TrackingForbiddenError(PermissionDeniedError):
    code = "tracking_forbidden"


class InvalidTrackCursorError(UnprocessableError):
    code = "invalid_cursor"
    title = "Invalid cursor"


class InvalidFenceError(UnprocessableError):
    code = "invalid_fence"
    title = "Invalid geofence"


class FenceLockedError(ConflictError):
    code = "fence_locked"
    title = "Geofence can no longer change"
