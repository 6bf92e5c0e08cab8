"""The commit signal every replica on one PostgreSQL database reads (db/changes.py): one row
whose value each observed write transaction replaces just before it commits

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'commit_signal',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('value', sa.LargeBinary(), nullable=False),
    )
    op.bulk_insert(table, [{'id': 1, 'value': os.urandom(8)}])


def downgrade() -> None:
    op.drop_table('commit_signal')
