"""Index attempts (campaign_id, answered_at): the cluster's per-heartbeat read of the other
instances' answers of a campaign's abandon windows (db/cluster.py `answered_by_others`)

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_attempts_campaign_answered", "attempts", ["campaign_id", "answered_at"])


def downgrade() -> None:
    op.drop_index("ix_attempts_campaign_answered", table_name="attempts")
