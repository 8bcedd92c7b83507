"""Every tunable constant of GPS validation and geofencing, in one place.

Tests, the ingest endpoint, the GPS consumer and the fleet simulator read these
values from here. Settings may override the validation limits that operators
tune (see :func:`validation_rules_from_settings`). Geofence rules change only
here, so every consumer evaluates the same fences the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from superior_one.config import Settings

MPH_IN_MPS = 0.44704  # 1 mph in m/s, exact (1609.344 m / 3600 s)


@dataclass(frozen=True, slots=True)
class GeofenceRules:
    """Geofence decisions for a load's stops. Distances in metres, times in seconds.

    A fix is *inside* a stop when its distance to the fence edge is <= 0 (for a
    circle: distance to the centre <= radius). It is *confidently outside* when
    ``edge_distance - accuracy > exit_margin_m`` (for the default circle:
    ``distance - accuracy > 550``). Between the two lies the hysteresis band,
    where a fix changes nothing, so GPS scatter at the edge cannot flap the state.
    """

    # Radius of a stop's circular fence unless the stop overrides it.
    default_radius_m: float = 500.0
    # Extra distance beyond the entry edge that a fix, after subtracting its
    # accuracy, must clear to count as outside: the exit radius is radius + margin.
    exit_margin_m: float = 50.0
    # Fixes with a larger accuracy radius (or none) never change geofence state;
    # a cell-tower fix is often 1-3 km off.
    max_accuracy_m: float = 200.0
    # Arrival needs this many inside fixes at low speed ...
    dwell_min_fixes: int = 2
    # ... spanning at least this long from the first to the last of them.
    dwell_min_s: float = 60.0
    # Fixes faster than this are driving through, and restart the dwell. 5 mph.
    dwell_max_speed_mps: float = 5 * MPH_IN_MPS
    # Departure needs this many consecutive confidently-outside fixes.
    exit_min_fixes: int = 2
    # A polygon drawn for a stop must contain its location or pass within this
    # distance of it: a fence elsewhere would never see the truck arrive.
    polygon_max_stop_distance_m: float = 2_000.0


@dataclass(frozen=True, slots=True)
class FixValidationRules:
    """Per-fix checks at ingest. Distances in metres, speeds in m/s, times in seconds."""

    # Fixes older than this (by fix time against the server clock) are rejected.
    # Phones buffer fixes through dead zones; three days covers a long outage.
    max_age_s: float = 72 * 3600.0
    # Fixes later than now plus this tolerance are rejected: a device clock that
    # is wrong would otherwise become the "latest" position forever.
    future_skew_s: float = 5 * 60.0
    # Accuracy must be in (0, max]; Android reports 0 when accuracy is unknown.
    max_accuracy_m: float = 20_000.0
    # Reported ground speed must be in [0, max]; iOS sends -1 for unknown, which
    # clients must send as null instead.
    max_reported_speed_mps: float = 100.0
    # Implied speed from the previous accepted fix, after crediting both fixes'
    # accuracy radii to the distance. 50 m/s is 112 mph: no truck, many GPS jumps.
    max_implied_speed_mps: float = 50.0
    # Maximum length of a client fix id.
    max_client_fix_id_length: int = 64
    # Maximum length of a fix's source ("gps", "network"), its column's length. The
    # consumer could not store a longer one after ingest had accepted it.
    max_source_length: int = 16


GEOFENCE_RULES = GeofenceRules()
VALIDATION_RULES = FixValidationRules()


@dataclass(frozen=True, slots=True)
class PickupProofRules:
    """The double-brokering check: what proves that the assigned carrier picked a load up.

    A pickup is proven when the geofence arrival at the pickup stop (the dwell
    above) ends at a fix time inside the pickup window, widened by the two
    margins, and the fixes came from the assigned driver's own account. Only a
    proven pickup moves a load to IN_TRANSIT when the truck departs.
    """

    # Trucks queue before a facility opens and loading runs late: an arrival up
    # to this long before the window starts, or after it ends, still counts.
    early_margin_s: float = 2 * 3600.0
    late_margin_s: float = 2 * 3600.0
    # Fixes relayed by a dispatcher's account (an ELD integration, or someone
    # typing positions in) are stored and move the fences, but prove nothing.
    require_driver_account: bool = True


@dataclass(frozen=True, slots=True)
class EtaRules:
    """Estimated arrival at the next stop from the last fix and the road distance left."""

    # Average over a whole trip, stops included; freight planners use 45-50 mph.
    average_speed_mph: float = 50.0
    # A last fix older than this makes the estimate "stale" in the response.
    stale_after_s: float = 15 * 60.0


PICKUP_PROOF_RULES = PickupProofRules()
ETA_RULES = EtaRules()


def validation_rules_from_settings(settings: Settings) -> FixValidationRules:
    """Return the validation rules with the limits that settings override."""
    rules = VALIDATION_RULES
    if settings.gps_max_fix_age_s is not None:
        rules = replace(rules, max_age_s=settings.gps_max_fix_age_s)
    if settings.gps_future_skew_s is not None:
        rules = replace(rules, future_skew_s=settings.gps_future_skew_s)
    if settings.gps_max_implied_speed_mps is not None:
        rules = replace(rules, max_implied_speed_mps=settings.gps_max_implied_speed_mps)
    return rules
