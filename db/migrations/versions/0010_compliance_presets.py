"""Compliance presets and AMD settings per campaign: campaigns.amd_false_positive_rate (the
campaign's own estimate of people AMD classes as machines; None: its preset's default, counted
as abandons under the UK preset), amd_method, amd_greeting_budget_ms, amd_company_numbers;
attempts.amd_cause (why AMD decided as it did)

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("amd_false_positive_rate", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("amd_method", sa.String(length=16), nullable=False,
                                      server_default="vad"))
        batch_op.add_column(sa.Column("amd_greeting_budget_ms", sa.Integer(), nullable=False,
                                      server_default="4500"))
        batch_op.add_column(sa.Column("amd_company_numbers", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.add_column(sa.Column("amd_cause", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.drop_column("amd_cause")
    with op.batch_alter_table("campaigns") as batch_op:
        for col in ("amd_company_numbers", "amd_greeting_budget_ms", "amd_method",
                    "amd_false_positive_rate"):
            batch_op.drop_column(col)
