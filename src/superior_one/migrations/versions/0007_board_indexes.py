"""Board indexes for a filter combined with a sort on another column.

0002's sort indexes answer a filter on another column by reading the sort order
and discarding what does not match. At 1 M loads (100 k posted) a haul type
sorted by rate per mile read 29,000 rows for a 25-row page (44 ms), and an
equipment type with a minimum rate, sorted by rate, read the heap of every
load of that equipment to count them. With the filter column first, each is
one range of one index, and the capped count reads the index alone.

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


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in BOARD_INDEXES.items():
            op.create_index(
                name,
                "loads",
                columns,
                postgresql_where=POSTED,
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in BOARD_INDEXES:
            op.drop_index(name, "loads", postgresql_concurrently=True, if_exists=True)
