"""alert close_cause: why an alert was closed (误报 / 测试 / 外出 …), for the reports

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing closed alerts keep no cause: nobody said why, and guessing would skew reports.
    op.add_column("alerts", sa.Column("close_cause", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("close_cause")
