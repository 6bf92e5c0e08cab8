"""audit entry ids are 64-bit on PostgreSQL (SQLite's INTEGER already is)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('audit_log', 'id', type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('audit_log', 'id', type_=sa.Integer(), existing_nullable=False)
