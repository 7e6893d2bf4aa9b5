"""witnessed checkpoints: witnesses' cosignatures of the audit log's checkpoints

Revision ID: 0003
Revises: 0002_lookup_misses
Create Date: 2026-12-01 23:40:00

"""
from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: str | None = '0002_lookup_misses'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('witnessed_checkpoints',
    sa.Column('tree_size', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('witness', sa.String(length=300), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', 'witness', name=op.f('pk_witnessed_checkpoints'))
    )


def downgrade() -> None:
    op.drop_table('witnessed_checkpoints')
