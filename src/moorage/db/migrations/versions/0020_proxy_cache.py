"""proxy cache namespaces: upstreams, tag checks, pending manifests, blob fetch claims

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'proxy_caches',
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('upstream_url', sa.String(2048), nullable=False),
        sa.Column('username', sa.String(255), nullable=True),
        sa.Column('password', sa.LargeBinary(), nullable=True),
        sa.Column('ca_pem', sa.Text(), nullable=True),
        sa.Column('insecure', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('rewrite_library', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('ttl_seconds', sa.Integer(), nullable=False, server_default='300'),
        sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('check_ok', sa.Boolean(), nullable=True),
        sa.Column('check_detail', sa.Text(), nullable=False, server_default=''),
        sa.Column('checked_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )
    op.create_table(
        'proxy_tags',
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('tag', sa.String(128), primary_key=True),
        sa.Column('digest', sa.String(200), nullable=False),
        sa.Column('checked_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'proxy_pending',
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('digest', sa.String(200), primary_key=True),
        sa.Column('media_type', sa.String(255), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('fetched_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'proxy_fetches',
        sa.Column('digest', sa.String(200), primary_key=True),
        sa.Column('holder', sa.String(64), nullable=False),
        sa.Column('beat_at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('proxy_fetches')
    op.drop_table('proxy_pending')
    op.drop_table('proxy_tags')
    op.drop_table('proxy_caches')
