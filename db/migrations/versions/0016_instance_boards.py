"""instance_boards: each dialer instance's live wallboard of each campaign, written on its
heartbeat, so any instance's console shows the campaign whole (docs/cluster.md)

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import JSONType, UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_boards",
        sa.Column("dialer_id", sa.String(length=64), nullable=False),
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("board", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("dialer_id", "campaign", name="pk_instance_boards"),
    )


def downgrade() -> None:
    op.drop_table("instance_boards")
