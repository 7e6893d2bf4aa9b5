"""lookup misses: per-client ID numbers not found or out of area (hub/lookups.py)

Revision ID: 0002_lookup_misses
Revises: 0001
Create Date: 2026-12-01 23:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_lookup_misses"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lookup_misses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_misses")),
    )
    op.create_index("ix_lookup_misses_client_id_at", "lookup_misses", ["client_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_lookup_misses_client_id_at", table_name="lookup_misses")
    op.drop_table("lookup_misses")
