"""The validated GPS fix that every tracking step after ingest works on."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator

from superior_one.geo.geodesy import LatLng


class Fix(BaseModel):
    """One accepted position of a driver's device.

    ``fix_time`` is when the device took the position (always UTC here), not when
    the server received it; every ordering decision uses it.
    """

    model_config = ConfigDict(frozen=True)

    fix_id: str  # stable id that events and load_events cite
    fix_time: AwareDatetime
    lat: float
    lng: float
    accuracy_m: float | None = None  # 68 % horizontal accuracy radius
    speed_mps: float | None = None
    heading_deg: float | None = None  # degrees clockwise from true north
    source: str = "gps"
    client_fix_id: str | None = None

    @field_validator("fix_time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def point(self) -> LatLng:
        return LatLng(self.lat, self.lng)


def fix_id_for(driver_id: str, fix_time: datetime) -> str:
    """Return the id of a driver's fix: one driver has at most one fix per instant."""
    stamp = fix_time.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"{driver_id}/{stamp}"
