"""leads.needs_outcome_attempt_id: a connected call whose disposition was lost holds its lead;
campaigns.max_call_s: a connected call is ended after this long

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(
            sa.Column("max_call_s", sa.Float(), nullable=False, server_default="3600"))
    with op.batch_alter_table("leads") as batch_op:
        batch_op.add_column(sa.Column("needs_outcome_attempt_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_leads_needs_outcome_attempt", "attempts",
                                    ["needs_outcome_attempt_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.drop_constraint("fk_leads_needs_outcome_attempt", type_="foreignkey")
        batch_op.drop_column("needs_outcome_attempt_id")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("max_call_s")
