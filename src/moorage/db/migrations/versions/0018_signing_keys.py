"""Image signing: trusted keys and keyless identities, stored verification results

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'signing_keys',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('scope', sa.String(255), nullable=False),
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), nullable=True),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('algorithm', sa.String(32), nullable=False),
        sa.Column('key_id', sa.String(64), nullable=False),
        sa.Column('fingerprint', sa.String(80), nullable=False),
        sa.Column('public_pem', sa.Text(), nullable=False),
        sa.Column('private_sealed', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('created_by', sa.String(255), nullable=False, server_default=''),
        sa.Column('revoked_at', sa.Float(), nullable=True),
        sa.Column('revoked_by', sa.String(255), nullable=True),
        sa.UniqueConstraint('scope', 'name', name='uq_signing_keys_scope_name'),
    )
    op.create_table(
        'signing_identities',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('scope', sa.String(255), nullable=False),
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), nullable=True),
        sa.Column('subject', sa.String(512), nullable=False),
        sa.Column('issuer', sa.String(512), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('created_by', sa.String(255), nullable=False, server_default=''),
        sa.UniqueConstraint('scope', 'subject', 'issuer', name='uq_signing_identities'),
    )
    op.create_table(
        'signature_results',
        sa.Column('repository', sa.String(255), primary_key=True),
        sa.Column('digest', sa.String(200),
                  sa.ForeignKey('manifests.digest', ondelete='CASCADE'), primary_key=True),
        sa.Column('verified', sa.Boolean(), nullable=False),
        sa.Column('signers', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('verdicts', sa.Text(), nullable=False, server_default='[]'),
        sa.Column('signatures', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('computed_at', sa.Float(), nullable=False),
    )
    op.create_index('ix_signature_results_digest', 'signature_results', ['digest'])


def downgrade() -> None:
    op.drop_index('ix_signature_results_digest', 'signature_results')
    op.drop_table('signature_results')
    op.drop_table('signing_identities')
    op.drop_table('signing_keys')
