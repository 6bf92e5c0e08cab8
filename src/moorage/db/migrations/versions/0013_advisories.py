"""advisories: the vulnerability records the scanner matches against

Revision ID: 0013
Revises: 0012 (the scanner's layer cache; renumber if the domains migration 0011 lands first)
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'advisories',
        sa.Column('id', sa.String(255), primary_key=True),
        sa.Column('modified', sa.String(64), nullable=False),
        sa.Column('content_hash', sa.String(64), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('severity_level', sa.String(16), nullable=False),
        sa.Column('severity_score', sa.Float(), nullable=True),
        sa.Column('severity_vector', sa.String(512), nullable=True),
        sa.Column('ecosystems', sa.Text(), nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.Column('imported_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'advisory_packages',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('advisory_id', sa.String(255),
                  sa.ForeignKey('advisories.id', ondelete='CASCADE'), nullable=False),
        sa.Column('ecosystem', sa.String(255), nullable=False),
        sa.Column('name', sa.String(512), nullable=False),
    )
    op.create_index('ix_advisory_packages_lookup', 'advisory_packages', ['ecosystem', 'name'])
    op.create_index('ix_advisory_packages_advisory', 'advisory_packages', ['advisory_id'])
    op.create_table(
        'advisory_aliases',
        sa.Column('alias', sa.String(255), nullable=False, primary_key=True),
        sa.Column('advisory_id', sa.String(255),
                  sa.ForeignKey('advisories.id', ondelete='CASCADE'), nullable=False,
                  primary_key=True),
    )
    op.create_index('ix_advisory_aliases_advisory', 'advisory_aliases', ['advisory_id'])
    op.create_table(
        'advisory_imports',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=False),
        sa.Column('finished_at', sa.Float(), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('advisory_imports')
    op.drop_table('advisory_aliases')
    op.drop_table('advisory_packages')
    op.drop_table('advisories')
