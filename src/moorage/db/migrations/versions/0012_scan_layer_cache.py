"""scan: the per-layer inventory cache

Revision ID: 0012
Revises: 0010 (to become 0011 when the domains migration lands on main first)
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scan_layer_cache',
        sa.Column('digest', sa.String(200), primary_key=True),
        sa.Column('cache_key', sa.String(64), nullable=False),
        sa.Column('result', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('used_at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('scan_layer_cache')
