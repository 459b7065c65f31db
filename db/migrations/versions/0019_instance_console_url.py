"""job_leases.console_url: the base URL of a cluster member's supervisor console, advertised
in its heartbeat row, so another member's console can hand it an agent control or a
listen-in for an agent or call that member serves (docs/cluster.md)

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_leases") as batch_op:
        batch_op.add_column(sa.Column("console_url", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_leases") as batch_op:
        batch_op.drop_column("console_url")
