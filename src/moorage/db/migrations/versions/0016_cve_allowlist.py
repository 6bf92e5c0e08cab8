"""cve_allowlist: advisories a namespace accepts, with a reason and an optional expiry

Revision ID: 0016
Revises: 0014 (the scan results (0015) and scanner adapters (0017) branches also start at
0014; the lead re-chains them on merge)
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cve_allowlist',
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('advisory_id', sa.String(64), primary_key=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('created_by', sa.String(255), nullable=False, server_default=''),
    )


def downgrade() -> None:
    op.drop_table('cve_allowlist')
