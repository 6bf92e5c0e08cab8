"""imports from other registries and their resumable plans

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'imports',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('url', sa.String(2048), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('scope', sa.Text(), nullable=False, server_default='{}'),
        sa.Column('prefix', sa.String(255), nullable=False, server_default=''),
        sa.Column('username', sa.String(255), nullable=True),
        sa.Column('secret', sa.LargeBinary(), nullable=True),
        sa.Column('ca_pem', sa.Text(), nullable=True),
        sa.Column('insecure', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('bandwidth', sa.BigInteger(), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('planned', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('message', sa.Text(), nullable=False, server_default=''),
        sa.Column('created_by', sa.String(255), nullable=False, server_default=''),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=True),
        sa.Column('ended_at', sa.Float(), nullable=True),
    )
    op.create_table(
        'import_items',
        sa.Column('import_id', sa.Integer(), sa.ForeignKey('imports.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('tag', sa.String(128), primary_key=True),
        sa.Column('state', sa.String(8), nullable=False),
        sa.Column('digest', sa.String(200), nullable=True),
        sa.Column('bytes', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('attempt', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('error', sa.Text(), nullable=True),
    )
    op.create_index('ix_import_items_state', 'import_items', ['import_id', 'state'])


def downgrade() -> None:
    op.drop_index('ix_import_items_state', 'import_items')
    op.drop_table('import_items')
    op.drop_table('imports')
