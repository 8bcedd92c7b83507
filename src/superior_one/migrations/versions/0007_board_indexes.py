"""Board indexes for a filter combined with a sort on another column.

0002's sort indexes answer a filter on another column by reading the sort order
and discarding what does not match. At 1 M loads (100 k posted) a haul type
sorted by rate per mile read 29,000 rows for a 25-row page (44 ms), and an
equipment type with a minimum rate, sorted by rate, read the heap of every
load of that equipment to count them. With the filter column first, each is
one range of one index, and the capped count reads the index alone.

A radius search sorted by pickup date walks the pickup-date order and tests
each load's pickup point. The two pickup-date indexes such walks read now
include the point, so the walk reads no heap pages: 0.5 ms instead of 2 to 4 ms
for 1,500 loads. They replace 0002's versions without the point.

Built concurrently: databases already at 0002 keep taking writes meanwhile.

Revision ID: 0007_board_indexes
Revises: 0002_loads
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_board_indexes"
down_revision: str | Sequence[str] | None = "0002_loads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTED = sa.text("status = 'POSTED'")

# name: columns, each partial on posted loads and ending in id for keyset pages.
BOARD_INDEXES = {
    "ix_loads_board_haul_rate_per_mile": ["haul_type", "rate_per_mile_cents", "id"],
    "ix_loads_board_haul_rate": ["haul_type", "gross_revenue_cents", "id"],
    "ix_loads_board_equipment_rate": ["equipment_type", "gross_revenue_cents", "id"],
    "ix_loads_board_equipment_rate_per_mile": ["equipment_type", "rate_per_mile_cents", "id"],
}


# name: (columns, included columns, the 0002 index it replaces, that index's columns)
COVERING_INDEXES = {
    "ix_loads_board_pickup_walk": (
        ["pickup_window_start", "id"],
        ["pickup_point"],
        "ix_loads_board_pickup",
        ["pickup_window_start", "id"],
    ),
    "ix_loads_board_destination_state_walk": (
        ["delivery_state", "pickup_window_start", "id"],
        ["pickup_point"],
        "ix_loads_board_destination_state",
        ["delivery_state", "pickup_window_start", "id"],
    ),
}


def _create(name: str, columns: list[str], include: list[str] | None = None) -> None:
    op.create_index(
        name,
        "loads",
        columns,
        postgresql_where=POSTED,
        postgresql_include=include or [],
        postgresql_concurrently=True,
        if_not_exists=True,
    )


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in BOARD_INDEXES.items():
            _create(name, columns)
        for name, (columns, include, replaced, _old_columns) in COVERING_INDEXES.items():
            _create(name, columns, include)
            op.drop_index(replaced, "loads", postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (_columns, _include, replaced, old_columns) in COVERING_INDEXES.items():
            _create(replaced, old_columns)
            op.drop_index(name, "loads", postgresql_concurrently=True, if_exists=True)
        for name in BOARD_INDEXES:
            op.drop_index(name, "loads", postgresql_concurrently=True, if_exists=True)
