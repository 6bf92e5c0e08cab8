"""pull policy exemptions bound to robot accounts, not to their names

A robot deleted and created again under the same name is a new account with a new secret;
the exemption named the old one. Rows here go with the account (ON DELETE CASCADE), so the
new one is not exempted until an owner says so.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 12:40:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pull_policy_exempt',
        sa.Column('namespace_id', sa.Integer(),
                  sa.ForeignKey('namespaces.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('user_id', sa.Integer(),
                  sa.ForeignKey('users.id', ondelete='CASCADE'), primary_key=True),
    )
    conn = op.get_bind()
    policies = conn.execute(sa.text(
        "SELECT p.namespace_id, n.name, p.exempt FROM pull_policies p "
        "JOIN namespaces n ON n.id = p.namespace_id")).all()
    for namespace_id, namespace, exempt in policies:
        try:
            names = [str(x) for x in json.loads(exempt or "[]")]
        except (ValueError, TypeError):
            names = []
        for name in names[:100]:
            user = conn.execute(sa.text(
                "SELECT id FROM users WHERE username = :u AND kind = 'robot'"),
                {"u": f"robot${namespace}+{name}"}).first()
            if user is not None:
                conn.execute(sa.text("INSERT INTO pull_policy_exempt (namespace_id, user_id) "
                                     "VALUES (:n, :u)"), {"n": namespace_id, "u": user[0]})


def downgrade() -> None:
    op.drop_table('pull_policy_exempt')
