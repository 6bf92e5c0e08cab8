"""Harbor scanner adapters: external scanners registered by administrators

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-07 05:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scanner_adapters',
        sa.Column('name', sa.String(64), primary_key=True),
        sa.Column('url', sa.String(2048), nullable=False),
        sa.Column('auth_kind', sa.String(16), nullable=False, server_default='none'),
        sa.Column('auth_secret', sa.LargeBinary(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('metadata', sa.Text(), nullable=False),
        sa.Column('health', sa.String(16), nullable=False, server_default='healthy'),
        sa.Column('health_detail', sa.Text(), nullable=False, server_default=''),
        sa.Column('checked_at', sa.Float(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )


def downgrade() -> None:
    op.drop_table('scanner_adapters')
