"""attempt_handlers: who held a connected call when (agent transfers, docs/call-controls.md)

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attempt_handlers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("from_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("to_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("how", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"],
                                name="fk_attempt_handlers_attempt_id_attempts",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"],
                                name="fk_attempt_handlers_agent_id_agents", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_attempt_handlers"),
    )
    op.create_index("ix_attempt_handlers_attempt", "attempt_handlers", ["attempt_id", "from_at"])


def downgrade() -> None:
    op.drop_index("ix_attempt_handlers_attempt", table_name="attempt_handlers")
    op.drop_table("attempt_handlers")
