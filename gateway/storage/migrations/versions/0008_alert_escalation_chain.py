"""the escalation chain snapshotted onto each alert when it is raised

Every later step of an alert is claimed against this snapshot, never the live
``escalation:`` configuration, so a changed file or a second process with another one does
not shift an alert already under way.

Alerts raised before this revision are left NULL: the chain they started with was never
written down anywhere SQL can see (it lived only in the configuration file of the day). The
gateway gives those alerts alone the live configuration at their next step and writes it
onto them then, so from the upgrade on they too keep one chain.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("escalation_chain", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("escalation_chain")
