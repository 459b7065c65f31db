"""campaigns.amd_decide_by_ms: the AMD decision deadline for people per campaign (ms after
answer, 0 = none; docs/sip.md). Existing campaigns get 2500, the deadline they ran before the
column (the `AmdSettings` default).

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("amd_decide_by_ms", sa.Integer(), nullable=False,
                                      server_default="2500"))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("amd_decide_by_ms")
