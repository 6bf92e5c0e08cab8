"""pull policies (threat blocking): per-namespace policies and the facts decisions need

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 09:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pull_policies',
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('severity', sa.String(16), nullable=True),
        sa.Column('block_unscanned', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('block_unsigned', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('exempt', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )
    op.create_table(
        'pull_scan_facts',
        sa.Column('digest', sa.String(200),
                  sa.ForeignKey('manifests.digest', ondelete='CASCADE'), primary_key=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('findings', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('updated_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'pull_signed',
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('digest', sa.String(200),
                  sa.ForeignKey('manifests.digest', ondelete='CASCADE'), primary_key=True),
        sa.Column('signers', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('updated_at', sa.Float(), nullable=False),
    )
    op.create_index('ix_pull_signed_digest', 'pull_signed', ['digest'])
    op.create_table(
        'pull_block_marks',
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('digest', sa.String(200), primary_key=True),
        sa.Column('actor', sa.String(255), primary_key=True),
        sa.Column('at', sa.Float(), nullable=False),
    )
    op.create_index('ix_pull_block_marks_at', 'pull_block_marks', ['at'])


def downgrade() -> None:
    op.drop_index('ix_pull_block_marks_at', 'pull_block_marks')
    op.drop_table('pull_block_marks')
    op.drop_index('ix_pull_signed_digest', 'pull_signed')
    op.drop_table('pull_signed')
    op.drop_table('pull_scan_facts')
    op.drop_table('pull_policies')
