"""china channels: provider per notification, village team robots, receipt dedup

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep NULL: their provider was the single notifier of the day, and no
    # village had a robot yet.
    op.add_column("notifications", sa.Column("provider", sa.String(length=20), nullable=True))
    op.add_column("villages", sa.Column("team_robot", sa.JSON(), nullable=True))
    op.create_table(
        "provider_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_receipts")),
        sa.UniqueConstraint("kind", "key", name="uq_provider_receipts_kind_key"),
    )


def downgrade() -> None:
    op.drop_table("provider_receipts")
    with op.batch_alter_table("villages") as batch_op:
        batch_op.drop_column("team_robot")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_column("provider")
