"""immutability rules can be disabled in place

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('immutability_rules', sa.Column('enabled', sa.Boolean(), nullable=False,
                                                  server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('immutability_rules') as batch:
        batch.drop_column('enabled')
