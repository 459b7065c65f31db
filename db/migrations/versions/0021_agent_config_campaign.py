"""agents.config_campaign: the campaign the config file named for a config agent when it last
seeded agents.campaign_id. A supervisor's move (agents.campaign_id) then outlives a restart
until the file names another campaign for the agent (docs/console.md, "What survives a restart").
Existing rows get NULL: their next start seeds them from the file, as before the column.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch_op:
        batch_op.add_column(sa.Column("config_campaign", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_column("config_campaign")
