"""The invitee's full name on an invitation.

The name an administrator gave when inviting a user was dropped: the user
created on acceptance got the name sent with the acceptance, or none. The
invitation now keeps it, and acceptance uses it when the invitee sends none.

Rows that exist get an empty name, as users created without one have. A
constant default adds the column without rewriting the table.

Revision ID: 0009_invitation_full_name
Revises: 0001_foundation
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_invitation_full_name"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "invitations",
        sa.Column("full_name", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("invitations", "full_name")
