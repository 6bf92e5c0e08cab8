"""single sign-on: where each account signs in, roles given by directory groups

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('source', sa.String(16), nullable=False,
                                     server_default='local'))
    op.add_column('users', sa.Column('external_id', sa.String(1024), nullable=True))
    op.create_index('ux_users_external', 'users', ['source', 'external_id'], unique=True)
    op.add_column('memberships', sa.Column('granted_by', sa.String(16), nullable=False,
                                           server_default=''))
    op.create_table(
        'group_roles',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('group_name', sa.String(1024), nullable=False),
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), nullable=False),
        sa.Column('role', sa.String(16), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.UniqueConstraint('group_name', 'namespace_id', name='uq_group_roles'),
    )


def downgrade() -> None:
    op.drop_table('group_roles')
    with op.batch_alter_table('memberships') as batch:
        batch.drop_column('granted_by')
    op.drop_index('ux_users_external', table_name='users')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('external_id')
        batch.drop_column('source')
