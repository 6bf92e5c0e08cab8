"""Indexes for large instances: blob links by digest (GC's orphan check, mounts) and a
namespace's repositories in name order (its listing, a page at a time)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_repository_blobs_digest', 'repository_blobs', ['digest'])
    # (namespace_id, name) serves every lookup the namespace_id index served, and also
    # gives a namespace's repositories in name order without sorting them all
    op.create_index('ix_repositories_namespace_name', 'repositories', ['namespace_id', 'name'])
    op.drop_index('ix_repositories_namespace', table_name='repositories')


def downgrade() -> None:
    op.create_index('ix_repositories_namespace', 'repositories', ['namespace_id'])
    op.drop_index('ix_repositories_namespace_name', table_name='repositories')
    op.drop_index('ix_repository_blobs_digest', table_name='repository_blobs')
