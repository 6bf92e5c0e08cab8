"""custom domain names: a certificate per hostname, chosen by SNI

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'domains',
        sa.Column('host', sa.String(253), primary_key=True),
        sa.Column('cert_pem', sa.Text(), nullable=False),
        sa.Column('key_pem', sa.LargeBinary(), nullable=False),
        sa.Column('subject', sa.String(255), nullable=False),
        sa.Column('names', sa.Text(), nullable=False),
        sa.Column('not_before', sa.Float(), nullable=False),
        sa.Column('not_after', sa.Float(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(255), nullable=False, server_default=''),
    )


def downgrade() -> None:
    op.drop_table('domains')
