"""One RELEASED or IN_TRANSIT load per driver, enforced by a partial unique index.

GPS fixes are unique per (driver, fix time), so a driver released on a second
load sent fixes that were stored once, for the first load: the second never
moved. The release endpoint now refuses it (409 driver_busy); this index makes
the rule hold for every writer.

Rows that already break the rule (data seeded before the rule, or released
through the old endpoint) are repaired first: per driver, the load furthest
along stays (IN_TRANSIT before RELEASED, then the earliest released); the
others go back to ASSIGNED without a driver, each with a SYSTEM event, so the
carrier can release them with another driver. The downgrade drops the index and
leaves the repaired loads as they are.

Built concurrently, like 0007's indexes: the loads table keeps taking writes.

Revision ID: 0008_one_load_per_driver
Revises: 0007_board_indexes
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_one_load_per_driver"
down_revision: str | Sequence[str] | None = "0007_board_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_loads_driver_on_the_road"
ON_THE_ROAD = "status IN ('RELEASED', 'IN_TRANSIT')"

REPAIR = sa.text(
    f"""
    WITH ranked AS (
        SELECT id, status, row_number() OVER (
            PARTITION BY assigned_driver_user_id
            ORDER BY status = 'IN_TRANSIT' DESC, released_at NULLS LAST, id
        ) AS rank
        FROM loads
        WHERE {ON_THE_ROAD} AND assigned_driver_user_id IS NOT NULL
    ), moved AS (
        UPDATE loads
        SET status = 'ASSIGNED', assigned_driver_user_id = NULL, released_at = NULL,
            picked_up_at = NULL, updated_at = now()
        FROM ranked
        WHERE loads.id = ranked.id AND ranked.rank > 1
        RETURNING loads.id, ranked.status
    )
    INSERT INTO load_events (load_id, from_status, to_status, actor_kind,
                             actor_description, reason)
    SELECT id, status, 'ASSIGNED', 'SYSTEM', 'migration 0008',
           'the driver was on another released or in-transit load'
    FROM moved
    """  # noqa: S608 - constant fragments only
)


def upgrade() -> None:
    op.execute(REPAIR)
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "loads",
            ["assigned_driver_user_id"],
            unique=True,
            postgresql_where=sa.text(ON_THE_ROAD),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, "loads", postgresql_concurrently=True, if_exists=True)
