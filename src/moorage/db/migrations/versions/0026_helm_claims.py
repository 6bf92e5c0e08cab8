"""Helm charts: claims on chart versions being uploaded (one upload per new version; the
chart quotas count them)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'helm_claims',
        sa.Column('namespace', sa.String(255), primary_key=True),
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('version', sa.String(255), primary_key=True),
        sa.Column('repository', sa.String(255), nullable=False),
        sa.Column('owner', sa.String(32), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('helm_claims')
