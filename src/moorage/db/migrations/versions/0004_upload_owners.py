"""uploads record who opened them, for the cap on open uploads per account or address

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('uploads') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=320), nullable=True))
    op.create_index('ix_uploads_owner', 'uploads', ['owner'])


def downgrade() -> None:
    op.drop_index('ix_uploads_owner', table_name='uploads')
    with op.batch_alter_table('uploads') as batch:
        batch.drop_column('owner')
