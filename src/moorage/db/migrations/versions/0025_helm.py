"""Helm charts: the metadata index of chart versions and the per-namespace index generation

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'helm_charts',
        sa.Column('namespace', sa.String(255), primary_key=True),
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('version', sa.String(255), primary_key=True),
        sa.Column('repository', sa.String(255), nullable=False),
        sa.Column('manifest_digest', sa.String(200),
                  sa.ForeignKey('manifests.digest', ondelete='CASCADE'), nullable=False),
        sa.Column('chart_digest', sa.String(200), nullable=False),
        sa.Column('chart_size', sa.BigInteger(), nullable=False),
        sa.Column('prov_digest', sa.String(200), nullable=True),
        sa.Column('api_version', sa.String(8), nullable=False),
        sa.Column('app_version', sa.String(255), nullable=False, server_default=''),
        sa.Column('description', sa.Text(), nullable=False, server_default=''),
        sa.Column('icon', sa.Text(), nullable=False, server_default=''),
        sa.Column('keywords', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('maintainers', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('dependencies', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('metadata', sa.Text(), nullable=False, server_default='{}'),
        sa.Column('created', sa.Float(), nullable=False),
    )
    op.create_index('ix_helm_charts_repository', 'helm_charts', ['repository'])
    op.create_index('ix_helm_charts_manifest', 'helm_charts', ['manifest_digest'])
    op.create_table(
        'helm_index_state',
        sa.Column('namespace', sa.String(255), primary_key=True),
        sa.Column('generation', sa.String(32), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('helm_index_state')
    op.drop_index('ix_helm_charts_manifest', 'helm_charts')
    op.drop_index('ix_helm_charts_repository', 'helm_charts')
    op.drop_table('helm_charts')
