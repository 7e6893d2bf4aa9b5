"""alerts ordered by a sequence; monitor evaluations of in-flight batches

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00.000000

"""
from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('monitor_evaluations',
    sa.Column('department', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.String(length=20), nullable=False),
    sa.Column('verdict', sa.Text(), nullable=False),
    sa.Column('alert_id', sa.String(length=32), nullable=False),
    sa.Column('entry_written', sa.Boolean(), nullable=False),
    sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('department', 'seq', 'rule_id', name=op.f('pk_monitor_evaluations'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
    # existing alerts keep their old order (created_at, id)
    conn = op.get_bind()
    ids = [r[0] for r in conn.execute(sa.text('SELECT id FROM alerts ORDER BY created_at, id'))]
    for n, alert_id in enumerate(ids, start=1):
        conn.execute(sa.text('UPDATE alerts SET seq = :n WHERE id = :id'), {'n': n, 'id': alert_id})
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('uq_alerts_seq', ['seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_alerts_seq')
        batch_op.drop_column('seq')
    op.drop_table('monitor_evaluations')
