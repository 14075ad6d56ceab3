"""notification priority: the outbox sends emergencies before routine messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # 3 = routine (digests, taken/resolved notices, confirmations), the default below.
    op.add_column(
        "notifications",
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="3"),
    )
    # Existing rows: an alert step takes its alert's group (emergency 0, wellbeing 1,
    # technical 2; unknown counts as emergency); a system message is technical.
    op.execute(
        sa.text(
            "UPDATE notifications SET priority = CASE "
            '(SELECT alerts."group" FROM alerts WHERE alerts.id = notifications.alert_id) '
            "WHEN 'wellbeing' THEN 1 WHEN 'technical' THEN 2 ELSE 0 END "
            "WHERE purpose = 'alert'"
        )
    )
    op.execute(sa.text("UPDATE notifications SET priority = 2 WHERE purpose = 'system'"))
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.create_index("ix_notifications_claim", "notifications", ["status", "priority", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_notifications_claim", table_name="notifications")
    op.create_index("ix_notifications_due", "notifications", ["status", "not_before"])
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_column("priority")
