"""scan results: a report per scanned image, its packages, per-namespace scan settings

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 05:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scan_results',
        sa.Column('digest', sa.String(200),
                  sa.ForeignKey('manifests.digest', ondelete='CASCADE'), primary_key=True),
        sa.Column('repository', sa.String(255), nullable=False),
        sa.Column('platform', sa.String(100), nullable=False, server_default=''),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('job_id', sa.BigInteger(), nullable=True),
        sa.Column('queued_at', sa.Float(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=True),
        sa.Column('finished_at', sa.Float(), nullable=True),
        sa.Column('engines', sa.String(255), nullable=False, server_default=''),
        sa.Column('distro', sa.Text(), nullable=True),
        sa.Column('layers', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('problems', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('findings', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('error', sa.Text(), nullable=True),
        *(sa.Column(level, sa.Integer(), nullable=False, server_default='0')
          for level in ('critical', 'high', 'medium', 'low', 'unknown')),
    )
    op.create_table(
        'scan_packages',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('digest', sa.String(200),
                  sa.ForeignKey('scan_results.digest', ondelete='CASCADE'), nullable=False),
        sa.Column('ecosystem', sa.String(100), nullable=False),
        sa.Column('base', sa.String(100), nullable=False),
        sa.Column('name', sa.String(512), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
    )
    op.create_index('ix_scan_packages_key', 'scan_packages', ['ecosystem', 'name'])
    op.create_index('ix_scan_packages_base', 'scan_packages', ['base', 'name'])
    op.create_index('ix_scan_packages_digest', 'scan_packages', ['digest'])
    op.create_table(
        'scan_settings',
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('scan_on_push', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )


def downgrade() -> None:
    op.drop_table('scan_settings')
    op.drop_index('ix_scan_packages_digest', 'scan_packages')
    op.drop_index('ix_scan_packages_base', 'scan_packages')
    op.drop_index('ix_scan_packages_key', 'scan_packages')
    op.drop_table('scan_packages')
    op.drop_table('scan_results')
