"""GPS tracking: fixes partitioned by day, geofence state, truck positions, fraud flags.

``geo_events`` holds every accepted fix. It is partitioned by fix time, one
partition per UTC day: 10,000 trucks pinging every 30 s write about 29 million
rows a day, and retention drops whole partitions instead of deleting rows.
A fix's identity is (driver, fix time), unique in its partition, so a retried
ping is stored once. There is no foreign key to ``loads``: every insert would
pay for a lookup, and loads are cancelled, never deleted.

``geo_events_create_partition(day)`` is the one definition of a partition; the
maintenance job and the gps-consumer call it (superior_one.tracking.partitions).

Revision ID: 0005_tracking
Revises: 0002_loads
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography

revision: str = "0005_tracking"
down_revision: str | Sequence[str] | None = "0002_loads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAG_REASONS = ("UNAUTHORIZED_SENDER", "PICKUP_NOT_PROVEN", "MANUAL_STATUS_WITHOUT_PROOF")
GEOFENCE_EVENT_TYPES = (
    "ENTERED",
    "EXITED",
    "ARRIVED_PICKUP",
    "DEPARTED_PICKUP",
    "ARRIVED_DELIVERY",
    "DEPARTED_DELIVERY",
)
# Partitions made by the migration: the validation accepts fixes up to 72 h old.
DAYS_BEHIND = 4
DAYS_AHEAD = 7

CREATE_PARTITION_FUNCTION = """
CREATE FUNCTION geo_events_create_partition(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'geo_events_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- Bounds are UTC midnights, whatever the session's time zone.
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF geo_events FOR VALUES FROM (%L) TO (%L)',
        name,
        (day::timestamp AT TIME ZONE 'UTC'),
        ((day + 1)::timestamp AT TIME ZONE 'UTC')
    );
    RETURN name;
END
$$
"""


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.execute("CREATE SEQUENCE geo_events_id_seq AS bigint")
    op.execute(
        """
        CREATE TABLE geo_events (
            id bigint NOT NULL DEFAULT nextval('geo_events_id_seq'),
            load_id uuid NOT NULL,
            driver_user_id uuid NOT NULL,
            carrier_organization_id uuid NOT NULL,
            sender_user_id uuid NOT NULL,
            fix_time timestamptz NOT NULL,
            received_at timestamptz NOT NULL,
            stored_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            lat double precision NOT NULL,
            lng double precision NOT NULL,
            accuracy_m real NOT NULL,
            speed_mps real,
            heading_deg real,
            source varchar(16) NOT NULL,
            client_fix_id varchar(64),
            -- Written straight to PostgreSQL while Redis was down: the
            -- gps-consumer has not evaluated its geofences yet.
            geofence_pending boolean NOT NULL DEFAULT false,
            CONSTRAINT ck_geo_events_lat CHECK (lat BETWEEN -90 AND 90),
            CONSTRAINT ck_geo_events_lng CHECK (lng BETWEEN -180 AND 180)
        ) PARTITION BY RANGE (fix_time)
        """
    )
    op.execute("ALTER SEQUENCE geo_events_id_seq OWNED BY geo_events.id")
    # Time-ordered appends: a BRIN index is a few pages per partition.
    op.execute("CREATE INDEX ix_geo_events_fix_time ON geo_events USING brin (fix_time)")
    op.execute("CREATE INDEX ix_geo_events_load_fix_time ON geo_events (load_id, fix_time)")
    op.execute(
        "CREATE UNIQUE INDEX uq_geo_events_driver_fix_time ON geo_events (driver_user_id, fix_time)"
    )
    op.execute(
        "CREATE INDEX ix_geo_events_geofence_pending ON geo_events (fix_time) "
        "WHERE geofence_pending"
    )
    op.execute(CREATE_PARTITION_FUNCTION)
    op.execute(
        sa.text(
            "SELECT geo_events_create_partition(d::date) FROM generate_series("
            "(now() AT TIME ZONE 'UTC')::date - :behind, "
            "(now() AT TIME ZONE 'UTC')::date + :ahead, interval '1 day') AS d"
        ).bindparams(behind=DAYS_BEHIND, ahead=DAYS_AHEAD)
    )

    op.create_table(
        "geofence_states",
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="CASCADE"), primary_key=True
        ),
        # The engine's serialized state (superior_one.tracking.geofence.GeofenceState).
        sa.Column("state", sa.dialects.postgresql.JSONB(), nullable=False),
        sa.Column("last_fix_time", sa.DateTime(timezone=True)),
        # Set when the assigned driver's dwell at pickup fell inside the window.
        sa.Column("pickup_proven_at", sa.DateTime(timezone=True)),
        sa.Column("pickup_proof_fix_id", sa.BigInteger()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )

    # A stop's fence when it is not the load's circle: a quarry or a job site
    # drawn as a polygon by the shipper. Vertices are [lat, lng] pairs in ring order.
    op.create_table(
        "stop_geofences",
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("stop_kind", sa.String(16), primary_key=True),
        sa.Column("vertices", sa.dialects.postgresql.JSONB(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("stop_kind IN ('pickup', 'delivery')", name="ck_stop_geofences_kind"),
    )

    op.create_table(
        "geofence_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("stop_kind", sa.String(16), nullable=False),
        sa.Column("stop_index", sa.SmallInteger(), nullable=False),
        # The fix that made the decision: geo_events (id, fix_time).
        sa.Column("gps_fix_id", sa.BigInteger(), nullable=False),
        sa.Column("fix_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=False),
        sa.Column("edge_distance_m", sa.Float(), nullable=False),
        sa.Column("in_sequence", sa.Boolean(), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            _in("event_type", GEOFENCE_EVENT_TYPES), name="ck_geofence_events_event_type"
        ),
        sa.CheckConstraint("stop_kind IN ('pickup', 'delivery')", name="ck_geofence_events_kind"),
    )
    op.create_index("ix_geofence_events_load", "geofence_events", ["load_id", "fix_time", "id"])

    op.create_table(
        "truck_positions",
        sa.Column(
            "driver_user_id",
            sa.Uuid(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "carrier_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="SET NULL")),
        sa.Column("gps_fix_id", sa.BigInteger(), nullable=False),
        sa.Column("fix_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("point", Geography("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=False),
        sa.Column("speed_mps", sa.Float()),
        sa.Column("heading_deg", sa.Float()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index(
        "ix_truck_positions_carrier",
        "truck_positions",
        ["carrier_organization_id", "driver_user_id"],
    )
    op.create_index(
        "ix_truck_positions_point", "truck_positions", ["point"], postgresql_using="gist"
    )

    op.create_table(
        "fraud_flags",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
        ),
        # Denormalized from the load, so "flags on a carrier" and "flags a
        # shipper may see" are one index scan each.
        sa.Column(
            "shipper_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "carrier_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        ),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        # Who sent the fixes or made the change; null for the geofence's own findings.
        sa.Column("actor_user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column(
            "actor_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="SET NULL"),
        ),
        sa.Column("gps_fix_id", sa.BigInteger()),
        sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(_in("reason", FLAG_REASONS), name="ck_fraud_flags_reason"),
        sa.CheckConstraint("occurrences > 0", name="ck_fraud_flags_occurrences_positive"),
    )
    # One row per load, reason and actor; repeats count up instead of piling up.
    op.execute(
        "CREATE UNIQUE INDEX uq_fraud_flags_load_reason_actor "
        "ON fraud_flags (load_id, reason, actor_user_id) NULLS NOT DISTINCT"
    )
    op.create_index(
        "ix_fraud_flags_carrier", "fraud_flags", ["carrier_organization_id", "last_seen_at"]
    )
    op.create_index(
        "ix_fraud_flags_shipper", "fraud_flags", ["shipper_organization_id", "last_seen_at"]
    )


def downgrade() -> None:
    op.drop_table("fraud_flags")
    op.drop_table("truck_positions")
    op.drop_table("geofence_events")
    op.drop_table("stop_geofences")
    op.drop_table("geofence_states")
    op.execute("DROP TABLE geo_events")
    op.execute("DROP FUNCTION geo_events_create_partition(date)")
