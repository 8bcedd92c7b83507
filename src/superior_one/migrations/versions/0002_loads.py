"""Loads, load events, carriers' interest, equipment types and matching rules.

The board reads only POSTED loads (about a tenth of the table), so its indexes
are partial on that status: each one is small, and a load leaves them when it is
assigned, cancelled or expires. One btree per supported sort and leading filter
ends in ``id`` so keyset pagination walks it without a sort step.

Revision ID: 0002_loads
Revises: 0001_foundation
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography

revision: str = "0002_loads"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "DRAFT",
    "POSTED",
    "ASSIGNED",
    "RELEASED",
    "IN_TRANSIT",
    "DELIVERED",
    "COMPLETED",
    "CANCELLED",
    "EXPIRED",
)
HAUL_TYPES = ("LOCAL", "REGIONAL", "LONG_HAUL")
LOAD_TYPES = ("FULL_TRUCKLOAD", "PARTIAL", "BULK", "HEAVY_HAUL")
RATE_MODES = ("FLAT", "PER_MILE", "PER_TON", "PER_HOUR", "PER_UNIT")
POSTED = sa.text("status = 'POSTED'")

# (code, name, category, max payload in lbs, description)
EQUIPMENT_TYPES = (
    ("END_DUMP", "End dump trailer", "DUMP", 50_000, "Tipping box trailer for loose bulk."),
    ("BELLY_DUMP", "Belly (bottom) dump trailer", "DUMP", 50_000, "Unloads through floor gates."),
    ("SIDE_DUMP", "Side dump trailer", "DUMP", 50_000, "Tips sideways; handles large rock."),
    ("TRI_AXLE_DUMP", "Tri-axle dump truck", "DUMP", 36_000, "Straight truck for short hauls."),
    ("LIVE_FLOOR", "Live (walking) floor trailer", "BULK", 45_000, "Conveyor floor unloading."),
    ("PNEUMATIC_TANKER", "Pneumatic dry bulk tanker", "TANKER", 52_000, "Cement, fly ash, lime."),
    ("HOPPER", "Hopper bottom trailer", "BULK", 52_000, "Grain and free-flowing bulk."),
    ("FLATBED", "Flatbed trailer", "FLATBED", 48_000, "48-53 ft open deck."),
    ("STEP_DECK", "Step deck trailer", "FLATBED", 48_000, "Lower deck for taller freight."),
    ("LOWBOY", "Lowboy / RGN trailer", "HEAVY", 80_000, "Removable gooseneck for machinery."),
    ("DRY_VAN", "Dry van", "VAN", 45_000, "Enclosed 53 ft trailer."),
    ("REEFER", "Refrigerated van", "VAN", 43_000, "Temperature-controlled 53 ft trailer."),
)

# (keyword, load type, haul type, min lbs, max lbs, equipment, tier, reason)
Rule = tuple[str, str | None, str | None, int | None, int | None, str, str, str]
EQUIPMENT_RULES: tuple[Rule, ...] = (
    ("gravel", "BULK", "LOCAL", None, 36_000, "TRI_AXLE_DUMP", "OPTIMAL",
     "Short aggregate runs: a tri-axle turns around fast and fits tight job sites."),
    ("gravel", "BULK", None, None, None, "END_DUMP", "OPTIMAL",
     "Loose aggregate dumps from an end dump at any site."),
    ("gravel", "BULK", None, None, None, "BELLY_DUMP", "ACCEPTABLE",
     "Free-flowing gravel spreads from a bottom dump; needs a drive-over spot."),
    ("sand", "BULK", "LOCAL", None, 36_000, "TRI_AXLE_DUMP", "OPTIMAL",
     "Short sand runs: a tri-axle turns around fast and fits tight job sites."),
    ("sand", "BULK", None, None, None, "END_DUMP", "OPTIMAL",
     "Sand dumps cleanly from an end dump."),
    ("sand", "BULK", None, None, None, "BELLY_DUMP", "OPTIMAL",
     "Sand flows through belly gates; the lighter trailer carries more payload."),
    ("stone", "BULK", None, None, None, "END_DUMP", "OPTIMAL",
     "Crushed stone dumps from an end dump at any site."),
    ("stone", "BULK", None, None, None, "SIDE_DUMP", "ACCEPTABLE",
     "Side dumps take large stone without the tipping risk of a raised box."),
    ("riprap", "BULK", None, None, None, "SIDE_DUMP", "OPTIMAL",
     "Large rock would bridge bottom-dump gates; a side dump unloads it safely."),
    ("riprap", "BULK", None, None, None, "END_DUMP", "ACCEPTABLE",
     "End dumps carry riprap but rock can damage the gate."),
    ("dirt", "BULK", None, None, None, "END_DUMP", "OPTIMAL",
     "Sticky soil needs a tipping box; it will not flow through belly gates."),
    ("dirt", "BULK", "LOCAL", None, 36_000, "TRI_AXLE_DUMP", "OPTIMAL",
     "Short soil runs between sites suit a tri-axle."),
    ("topsoil", "BULK", None, None, None, "END_DUMP", "OPTIMAL",
     "Topsoil needs a tipping box; it will not flow through belly gates."),
    ("topsoil", "BULK", None, None, None, "LIVE_FLOOR", "ACCEPTABLE",
     "A live floor unloads topsoil without raising a box under wires."),
    ("asphalt", "BULK", None, None, None, "END_DUMP", "OPTIMAL",
     "Hot mix is dumped into the paver hopper from an end dump (tarped)."),
    ("asphalt", "BULK", "LOCAL", None, 36_000, "TRI_AXLE_DUMP", "OPTIMAL",
     "Short hot-mix runs keep temperature in a tri-axle."),
    ("millings", "BULK", None, None, None, "BELLY_DUMP", "ACCEPTABLE",
     "Millings flow through belly gates for base courses."),
    ("cement", "BULK", None, None, None, "PNEUMATIC_TANKER", "OPTIMAL",
     "Dry cement is blown into silos from a pneumatic tanker."),
    ("fly ash", "BULK", None, None, None, "PNEUMATIC_TANKER", "OPTIMAL",
     "Fly ash is blown into silos from a pneumatic tanker."),
    ("grain", "BULK", None, None, None, "HOPPER", "OPTIMAL",
     "Grain unloads through hopper gates into a pit."),
    ("grain", "BULK", None, None, None, "END_DUMP", "ACCEPTABLE",
     "An end dump carries grain when it is tarped and clean."),
    ("mulch", "BULK", None, None, None, "LIVE_FLOOR", "OPTIMAL",
     "Light, bulky mulch fills a live floor's volume and unloads anywhere."),
    ("mulch", "BULK", None, None, None, "END_DUMP", "ACCEPTABLE",
     "An end dump carries mulch but fills up on volume before weight."),
    ("steel", None, None, None, None, "FLATBED", "OPTIMAL",
     "Steel is loaded from the side by crane or forklift on an open deck."),
    ("steel", None, None, None, None, "STEP_DECK", "ACCEPTABLE",
     "A step deck carries taller steel under bridge height."),
    ("rebar", None, None, None, None, "FLATBED", "OPTIMAL",
     "Rebar bundles load from the side onto an open deck."),
    ("pipe", None, None, None, None, "FLATBED", "OPTIMAL",
     "Pipe loads from the side onto an open deck."),
    ("lumber", None, None, None, None, "FLATBED", "OPTIMAL",
     "Lumber units load by forklift from the side onto an open deck."),
    ("precast", None, None, None, None, "STEP_DECK", "OPTIMAL",
     "Tall precast pieces need the step deck's lower deck for clearance."),
    ("precast", None, None, None, None, "FLATBED", "ACCEPTABLE",
     "Low precast pieces fit a flatbed."),
    ("excavator", "HEAVY_HAUL", None, None, None, "LOWBOY", "OPTIMAL",
     "Tracked machines drive onto a lowboy's low deck over the removable gooseneck."),
    ("excavator", "HEAVY_HAUL", None, None, 48_000, "STEP_DECK", "ACCEPTABLE",
     "A small excavator fits a step deck with ramps."),
    ("bulldozer", "HEAVY_HAUL", None, None, None, "LOWBOY", "OPTIMAL",
     "Dozers drive onto a lowboy's low deck over the removable gooseneck."),
    ("loader", "HEAVY_HAUL", None, None, None, "LOWBOY", "OPTIMAL",
     "Wheel loaders drive onto a lowboy's low deck."),
    ("loader", "HEAVY_HAUL", None, None, 48_000, "STEP_DECK", "ACCEPTABLE",
     "A compact loader fits a step deck with ramps."),
    ("*", "HEAVY_HAUL", None, None, None, "LOWBOY", "ACCEPTABLE",
     "Heavy or oversize freight usually needs a lowboy's low deck and rating."),
    ("drywall", None, None, None, None, "FLATBED", "OPTIMAL",
     "Drywall loads by forklift from the side; tarped on a flatbed."),
    ("drywall", None, None, None, None, "DRY_VAN", "ACCEPTABLE",
     "A dry van keeps drywall dry but must be loaded from the rear."),
    ("shingles", None, None, None, None, "FLATBED", "OPTIMAL",
     "Shingle pallets are delivered to the roof by the truck's boom from a flatbed."),
    ("pallet", None, None, None, None, "DRY_VAN", "OPTIMAL",
     "Palletized freight loads from a dock into a dry van."),
    ("produce", None, None, None, None, "REEFER", "OPTIMAL",
     "Produce needs a temperature-controlled trailer."),
    ("frozen", None, None, None, None, "REEFER", "OPTIMAL",
     "Frozen food needs a refrigerated trailer."),
    ("*", "FULL_TRUCKLOAD", None, None, None, "DRY_VAN", "ACCEPTABLE",
     "General freight that is palletized and weather-sensitive fits a dry van."),
    ("*", "PARTIAL", None, None, None, "DRY_VAN", "ACCEPTABLE",
     "Partial loads share a dry van with other freight."),
)  # fmt: skip


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _stop_columns(prefix: str) -> list[sa.Column[Any]]:
    return [
        sa.Column(f"{prefix}_street", sa.String(200), server_default="", nullable=False),
        sa.Column(f"{prefix}_city", sa.String(100), nullable=False),
        sa.Column(f"{prefix}_state", sa.String(2), nullable=False),
        sa.Column(f"{prefix}_zip", sa.String(5), nullable=False),
        sa.Column(f"{prefix}_time_zone", sa.String(64), nullable=False),
        sa.Column(
            f"{prefix}_point",
            Geography("POINT", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column(f"{prefix}_window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column(f"{prefix}_window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(f"{prefix}_geofence_radius_m", sa.Integer()),
    ]


def _stop_checks(prefix: str) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint(
            f"{prefix}_state ~ '^[A-Z]{{2}}$'", name=f"ck_loads_{prefix}_state_code"
        ),
        sa.CheckConstraint(f"{prefix}_zip ~ '^[0-9]{{5}}$'", name=f"ck_loads_{prefix}_zip_code"),
        sa.CheckConstraint(
            f"{prefix}_window_end > {prefix}_window_start", name=f"ck_loads_{prefix}_window_order"
        ),
        sa.CheckConstraint(
            f"{prefix}_geofence_radius_m IS NULL "
            f"OR {prefix}_geofence_radius_m BETWEEN 50 AND 50000",
            name=f"ck_loads_{prefix}_geofence_radius",
        ),
    ]


def upgrade() -> None:
    equipment_types = op.create_table(
        "equipment_types",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("max_payload_lbs", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
    )
    equipment_rules = op.create_table(
        "equipment_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("commodity_keyword", sa.String(64), nullable=False),
        sa.Column("load_type", sa.String(32)),
        sa.Column("haul_type", sa.String(32)),
        sa.Column("min_weight_lbs", sa.Integer()),
        sa.Column("max_weight_lbs", sa.Integer()),
        sa.Column(
            "equipment_code",
            sa.String(32),
            sa.ForeignKey("equipment_types.code", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("tier IN ('OPTIMAL', 'ACCEPTABLE')", name="ck_equipment_rules_tier"),
        sa.CheckConstraint(
            f"load_type IS NULL OR {_in('load_type', LOAD_TYPES)}", name="ck_equipment_rules_load"
        ),
        sa.CheckConstraint(
            f"haul_type IS NULL OR {_in('haul_type', HAUL_TYPES)}", name="ck_equipment_rules_haul"
        ),
    )
    op.bulk_insert(
        equipment_types,
        [
            {"code": c, "name": n, "category": k, "max_payload_lbs": w, "description": d}
            for c, n, k, w, d in EQUIPMENT_TYPES
        ],
    )
    op.bulk_insert(
        equipment_rules,
        [
            {
                "id": i,
                "commodity_keyword": kw,
                "load_type": lt,
                "haul_type": ht,
                "min_weight_lbs": lo,
                "max_weight_lbs": hi,
                "equipment_code": eq,
                "tier": tier,
                "reason": reason,
            }
            for i, (kw, lt, ht, lo, hi, eq, tier, reason) in enumerate(EQUIPMENT_RULES, start=1)
        ],
    )

    op.create_table(
        "loads",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "shipper_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("created_by_user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(64)),
        *_stop_columns("pickup"),
        *_stop_columns("delivery"),
        sa.Column(
            "equipment_type",
            sa.String(32),
            sa.ForeignKey("equipment_types.code", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("haul_type", sa.String(32), nullable=False),
        sa.Column("load_type", sa.String(32), nullable=False),
        sa.Column("commodity", sa.String(200), nullable=False),
        sa.Column("weight_lbs", sa.Integer(), nullable=False),
        sa.Column("rate_cents", sa.BigInteger(), nullable=False),
        sa.Column("rate_mode", sa.String(32), nullable=False),
        sa.Column("units", sa.Numeric(12, 2)),
        sa.Column("miles", sa.Numeric(8, 1), nullable=False),
        sa.Column("gross_revenue_cents", sa.BigInteger(), nullable=False),
        sa.Column(
            "rate_per_mile_cents",
            sa.BigInteger(),
            sa.Computed("round(gross_revenue_cents / greatest(miles, 1))::bigint", persisted=True),
        ),
        sa.Column(
            "assigned_carrier_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="RESTRICT"),
        ),
        sa.Column(
            "assigned_driver_user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")
        ),
        sa.Column("posted_at", sa.DateTime(timezone=True)),
        sa.Column("assigned_at", sa.DateTime(timezone=True)),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("picked_up_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_loads_status"),
        sa.CheckConstraint(_in("haul_type", HAUL_TYPES), name="ck_loads_haul_type"),
        sa.CheckConstraint(_in("load_type", LOAD_TYPES), name="ck_loads_load_type"),
        sa.CheckConstraint(_in("rate_mode", RATE_MODES), name="ck_loads_rate_mode"),
        sa.CheckConstraint("weight_lbs > 0", name="ck_loads_weight_positive"),
        sa.CheckConstraint("rate_cents > 0", name="ck_loads_rate_positive"),
        sa.CheckConstraint("gross_revenue_cents > 0", name="ck_loads_gross_positive"),
        sa.CheckConstraint("miles >= 0", name="ck_loads_miles_not_negative"),
        sa.CheckConstraint(
            "(rate_mode IN ('FLAT', 'PER_MILE')) = (units IS NULL) "
            "AND (units IS NULL OR units > 0)",
            name="ck_loads_units_match_rate_mode",
        ),
        sa.CheckConstraint(
            "assigned_carrier_organization_id IS NOT NULL OR "
            "status NOT IN ('ASSIGNED', 'RELEASED', 'IN_TRANSIT', 'DELIVERED', 'COMPLETED')",
            name="ck_loads_carrier_when_assigned",
        ),
        *_stop_checks("pickup"),
        *_stop_checks("delivery"),
    )

    # Board: partial on POSTED, one btree per sort or leading filter.
    board_btrees = {
        "ix_loads_board_pickup": ["pickup_window_start", "id"],
        "ix_loads_board_origin_state": ["pickup_state", "pickup_window_start", "id"],
        "ix_loads_board_lane": ["pickup_state", "delivery_state", "pickup_window_start", "id"],
        "ix_loads_board_destination_state": ["delivery_state", "pickup_window_start", "id"],
        "ix_loads_board_equipment": ["equipment_type", "pickup_window_start", "id"],
        "ix_loads_board_rate": ["gross_revenue_cents", "id"],
        "ix_loads_board_rate_per_mile": ["rate_per_mile_cents", "id"],
        "ix_loads_board_window_end": ["pickup_window_end"],
    }
    for name, columns in board_btrees.items():
        op.create_index(name, "loads", columns, postgresql_where=POSTED)
    op.create_index(
        "ix_loads_board_pickup_point",
        "loads",
        ["pickup_point"],
        postgresql_using="gist",
        postgresql_where=POSTED,
    )
    op.create_index(
        "ix_loads_board_delivery_point",
        "loads",
        ["delivery_point"],
        postgresql_using="gist",
        postgresql_where=POSTED,
    )
    op.create_index(
        "ix_loads_board_commodity_trgm",
        "loads",
        ["commodity"],
        postgresql_using="gin",
        postgresql_ops={"commodity": "gin_trgm_ops"},
        postgresql_where=POSTED,
    )
    # Each organization's own lists.
    op.create_index("ix_loads_shipper", "loads", ["shipper_organization_id", "created_at", "id"])
    op.create_index(
        "ix_loads_carrier",
        "loads",
        ["assigned_carrier_organization_id", "assigned_at", "id"],
        postgresql_where=sa.text("assigned_carrier_organization_id IS NOT NULL"),
    )
    op.create_index(
        "ix_loads_driver",
        "loads",
        ["assigned_driver_user_id"],
        postgresql_where=sa.text("assigned_driver_user_id IS NOT NULL"),
    )

    op.create_table(
        "load_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("actor_kind", sa.String(32), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column(
            "actor_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="SET NULL"),
        ),
        sa.Column("actor_description", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("gps_fix_id", sa.BigInteger()),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(_in("to_status", STATUSES), name="ck_load_events_to_status"),
        sa.CheckConstraint(
            f"from_status IS NULL OR {_in('from_status', STATUSES)}",
            name="ck_load_events_from_status",
        ),
        sa.CheckConstraint(
            "actor_kind IN ('USER', 'SYSTEM', 'GPS')", name="ck_load_events_actor_kind"
        ),
    )
    op.create_index("ix_load_events_load_id", "load_events", ["load_id", "id"])

    op.create_table(
        "load_interests",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "carrier_organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("counter_rate_cents", sa.BigInteger()),
        sa.Column("note", sa.String(500), server_default="", nullable=False),
        *_timestamps(),
        sa.UniqueConstraint(
            "load_id", "carrier_organization_id", name="uq_load_interests_load_carrier"
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'WITHDRAWN', 'ACCEPTED', 'DECLINED')",
            name="ck_load_interests_status",
        ),
        sa.CheckConstraint(
            "counter_rate_cents IS NULL OR counter_rate_cents > 0",
            name="ck_load_interests_counter_rate_positive",
        ),
    )
    op.create_index(
        "ix_load_interests_carrier", "load_interests", ["carrier_organization_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("load_interests")
    op.drop_table("load_events")
    op.drop_table("loads")
    op.drop_table("equipment_rules")
    op.drop_table("equipment_types")
