"""artifact subscriptions, their executions and the tags they brought in

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'subscriptions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(64), nullable=False, unique=True),
        sa.Column('url', sa.String(2048), nullable=False),
        sa.Column('upstream', sa.String(255), nullable=False),
        sa.Column('username', sa.String(255), nullable=True),
        sa.Column('secret', sa.LargeBinary(), nullable=True),
        sa.Column('ca_pem', sa.Text(), nullable=True),
        sa.Column('insecure', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('repository', sa.String(255), nullable=False),
        sa.Column('filter_kind', sa.String(8), nullable=False, server_default='glob'),
        sa.Column('filter', sa.String(255), nullable=False, server_default='*'),
        sa.Column('cron', sa.String(128), nullable=False, server_default=''),
        sa.Column('keep_newest', sa.Integer(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )
    op.create_table(
        'subscription_executions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('subscription_id', sa.Integer(),
                  sa.ForeignKey('subscriptions.id', ondelete='CASCADE'), nullable=False),
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
    op.create_index('ix_subscription_executions_subscription', 'subscription_executions',
                    ['subscription_id', 'id'])
    op.create_table(
        'subscription_tags',
        sa.Column('subscription_id', sa.Integer(),
                  sa.ForeignKey('subscriptions.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('tag', sa.String(128), primary_key=True),
        sa.Column('digest', sa.String(200), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('subscription_tags')
    op.drop_index('ix_subscription_executions_subscription', 'subscription_executions')
    op.drop_table('subscription_executions')
    op.drop_table('subscriptions')
