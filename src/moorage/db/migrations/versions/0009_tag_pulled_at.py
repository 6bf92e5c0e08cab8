"""tags record when they were last pulled; an index for the newest tags first

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tags', sa.Column('pulled_at', sa.Float(), nullable=True))
    op.create_index('ix_tags_repository_updated', 'tags', ['repository_id', 'updated_at'])


def downgrade() -> None:
    op.drop_index('ix_tags_repository_updated', table_name='tags')
    with op.batch_alter_table('tags') as batch:
        batch.drop_column('pulled_at')
