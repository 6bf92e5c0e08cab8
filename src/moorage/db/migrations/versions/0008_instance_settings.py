"""runtime switches shared by every replica (the read-only mode)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'instance_settings',
        sa.Column('name', sa.String(64), primary_key=True),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )


def downgrade() -> None:
    op.drop_table('instance_settings')
