"""attempt_handlers.agent_id nullable: a row with no agent is an outside party the call was
transferred to (how = 'transfer_out', docs/call-controls.md)

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempt_handlers") as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM attempt_handlers WHERE agent_id IS NULL")
    with op.batch_alter_table("attempt_handlers") as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.Integer(), nullable=False)
