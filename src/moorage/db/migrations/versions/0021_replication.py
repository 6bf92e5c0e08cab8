"""replication rules, their executions and resumable uploads

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'replication_rules',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(64), nullable=False, unique=True),
        sa.Column('mode', sa.String(8), nullable=False),
        sa.Column('url', sa.String(2048), nullable=False),
        sa.Column('username', sa.String(255), nullable=True),
        sa.Column('secret', sa.LargeBinary(), nullable=True),
        sa.Column('ca_pem', sa.Text(), nullable=True),
        sa.Column('insecure', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('repositories', sa.String(255), nullable=False, server_default='**'),
        sa.Column('tags', sa.String(255), nullable=False, server_default='*'),
        sa.Column('destination_namespace', sa.String(255), nullable=False, server_default=''),
        sa.Column('on_event', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('cron', sa.String(128), nullable=False, server_default=''),
        sa.Column('propagate_deletes', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('bandwidth', sa.BigInteger(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )
    op.create_table(
        'replication_executions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('rule_id', sa.Integer(),
                  sa.ForeignKey('replication_rules.id', ondelete='CASCADE'), nullable=False),
        sa.Column('trigger', sa.String(16), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('scope', sa.Text(), nullable=False, server_default='{}'),
        sa.Column('artifacts_done', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('artifacts_total', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('bytes', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('copied', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('errors', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('message', sa.Text(), nullable=False, server_default=''),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=True),
        sa.Column('ended_at', sa.Float(), nullable=True),
    )
    op.create_index('ix_replication_executions_rule', 'replication_executions',
                    ['rule_id', 'id'])
    op.create_table(
        'replication_uploads',
        sa.Column('rule_id', sa.Integer(),
                  sa.ForeignKey('replication_rules.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('digest', sa.String(200), primary_key=True),
        sa.Column('location', sa.Text(), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('replication_uploads')
    op.drop_index('ix_replication_executions_rule', 'replication_executions')
    op.drop_table('replication_executions')
    op.drop_table('replication_rules')
